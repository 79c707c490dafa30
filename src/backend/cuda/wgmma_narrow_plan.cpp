#include "backend/cuda/wgmma_narrow_plan.h"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

int tiles_of(const int64_t* member_rows, int members, int half) {
  int tiles = 0;
  for (int i = 0; i < members; ++i) tiles += static_cast<int>((member_rows[i] + 2 * half - 1) / (2 * half));
  return tiles;
}

}  // namespace

WgmmaNarrowPlan plan_wgmma_narrow_tiles(const int64_t* member_rows, int members, int cluster, int sms,
                                        const std::function<int(int half, int cluster)>& capacity) {
  WgmmaNarrowPlan plan;
  for (int c : {cluster, 1}) {
    for (int half : kWgmmaNarrowHalves) {
      const int tiles = tiles_of(member_rows, members, half);
      if (tiles <= (c > 1 ? capacity(half, c) : sms)) {
        plan.half = half;
        plan.tiles = tiles;
        plan.cluster = c;
        plan.blocks = (tiles + c - 1) / c * c;
        return plan;
      }
    }
  }
  plan.half = kWgmmaNarrowHalves[std::size(kWgmmaNarrowHalves) - 1];
  plan.tiles = tiles_of(member_rows, members, plan.half);
  plan.cluster = 1;
  plan.blocks = std::min(plan.tiles, sms);
  return plan;
}

WgmmaNarrowStages plan_wgmma_narrow_stages(int tile_rows, int64_t rows, int cluster, int64_t k, int max_chunks) {
  WgmmaNarrowStages shape;
  const int64_t group = 8 * cluster;
  shape.token_rows = static_cast<int>(std::min<int64_t>(kWgmmaNarrowTokens, (rows + group - 1) / group * group));
  const int64_t chunks = k / kWgmmaNarrowChunkBytes;
  shape.chunks = std::clamp(24 * 1024 / (tile_rows * kWgmmaNarrowChunkBytes), 1, max_chunks);
  while (chunks % shape.chunks != 0) --shape.chunks;
  shape.bytes = shape.chunks * (tile_rows + shape.token_rows) * kWgmmaNarrowChunkBytes;
  const int overhang = (kWgmmaNarrowTokens - shape.token_rows) * kWgmmaNarrowChunkBytes;  // the MMA's rows past the tokens
  shape.stages = std::min(kWgmmaNarrowMaxStages, (kWgmmaNarrowStagesBytes - overhang) / shape.bytes);
  return shape;
}

}  // namespace octet::backend::cuda
