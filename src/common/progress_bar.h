#pragma once
// A one-line progress bar on stderr for byte-moving work (writing or loading checkpoints): percent,
// GB done of GB total and GB/s since the start, redrawn at most ten times a second.
#include <chrono>
#include <cstdint>
#include <string>

namespace octet {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total_bytes);
  void update(uint64_t done_bytes);
  void finish();  // the final line, with a newline
  double seconds() const;

 private:
  void draw(uint64_t done_bytes);
  std::string label_;
  uint64_t total_bytes_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool finished_ = false;
  uint64_t done_bytes_ = 0;
};

}  // namespace octet
