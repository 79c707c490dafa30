#pragma once
// The narrow-tile wgmma GEMM's launch shape (skinny_gemm_wgmma_narrow.cu), as a host function of the
// weights' row counts and how many blocks run at once, so that it is tested without a GPU.
#include <cstdint>
#include <functional>

namespace octet::backend::cuda {

// The kernel's fixed shape, which its stage plan below depends on.
inline constexpr int kWgmmaNarrowTokens = 64;         // the MMA's m: the batch, zero-padded
inline constexpr int kWgmmaNarrowChunkBytes = 128;    // the 128-byte swizzle's row: four k32 MMAs
inline constexpr int kWgmmaNarrowMaxStageChunks = 4;  // chunks of k a stage brings at most
inline constexpr int kWgmmaNarrowMaxStages = 16;
inline constexpr int kWgmmaNarrowStagesBytes = 192 * 1024;

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

// How a launch cuts k and the stages, from the tile and the tokens' rows.
struct WgmmaNarrowStages {
  int token_rows = 0;  // the tokens' rows a stage brings a chunk
  int chunks = 0;      // chunks of k a stage: the weight rows' copies 128·chunks bytes long
  int bytes = 0;
  int stages = 0;
};

// The tokens' rows: the batch rounded up to whole 8-row swizzle groups a cluster block (the MMA rows
// past these read on into what follows in shared memory, which reaches only outputs that are not
// stored: a row of the product depends on its row of the tokens alone; the last stage keeps that
// much room after it). A stage's chunks: the most, up to max_chunks and about 24 KB of weights,
// that divide k, their copies asked for back to back (a weight row's next chunks together).
WgmmaNarrowStages plan_wgmma_narrow_stages(int tile_rows, int64_t rows, int cluster, int64_t k, int max_chunks);

}  // namespace octet::backend::cuda
