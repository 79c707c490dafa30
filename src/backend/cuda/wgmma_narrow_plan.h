#pragma once
// The narrow-tile wgmma GEMM's launch shape (skinny_gemm_wgmma_narrow.cu), as a host function of the
// weights' row counts and how many blocks run at once, so that it is tested without a GPU.
#include <cstdint>
#include <functional>

namespace octet::backend::cuda {

// The instances: a consumer warpgroup's weight rows (the MMA's n), a tile being twice that.
inline constexpr int kWgmmaNarrowHalves[] = {8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128};

struct WgmmaNarrowPlan {
  int half = 0;     // a consumer warpgroup's weight rows (the MMA's n); a tile is twice that
  int tiles = 0;    // of the whole group
  int blocks = 0;   // launched: the tiles rounded up to whole clusters, or at most one a SM
  int cluster = 1;  // blocks a cluster
};

// The narrowest tiles over the members' row counts that give every block one tile, in clusters of
// `cluster` where that many fit (capacity(half, cluster): blocks of that instance running at once in
// such clusters), else without clusters (at most `sms` blocks); past that, tiles of 256 rows, several
// a block in turn.
WgmmaNarrowPlan plan_wgmma_narrow_tiles(const int64_t* member_rows, int members, int cluster, int sms,
                                        const std::function<int(int half, int cluster)>& capacity);

}  // namespace octet::backend::cuda
