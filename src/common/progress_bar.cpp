#include "common/progress_bar.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace octet {

ProgressBar::ProgressBar(std::string label, uint64_t total_bytes)
    : label_(std::move(label)), total_bytes_(total_bytes), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double ProgressBar::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(uint64_t done_bytes) {
  done_bytes_ = done_bytes;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(done_bytes);
}

void ProgressBar::draw(uint64_t done_bytes) {
  constexpr int kWidth = 30;
  const double fraction = total_bytes_ ? std::min(1.0, static_cast<double>(done_bytes) / static_cast<double>(total_bytes_)) : 1.0;
  const int filled = static_cast<int>(fraction * kWidth);
  const double elapsed = seconds();
  const double rate = elapsed > 0 ? static_cast<double>(done_bytes) / 1e9 / elapsed : 0;
  fmt::print(stderr, "\r{} [{}{}] {:3.0f}% {:.2f}/{:.2f} GB {:.2f} GB/s", label_, std::string(filled, '#'),
             std::string(kWidth - filled, ' '), 100 * fraction, static_cast<double>(done_bytes) / 1e9,
             static_cast<double>(total_bytes_) / 1e9, rate);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  draw(done_bytes_);
  fmt::print(stderr, "\n");
}

}  // namespace octet
