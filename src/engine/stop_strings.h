#pragma once
// Streams generated text while watching for stop strings: text that could still turn out to be the
// start of a stop string is held back until it cannot.
#include <string>
#include <string_view>
#include <vector>

namespace octet::engine {

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Adds text; returns what may be released now. stopped() turns true once a stop string appeared
  // (the text before it is released; the stop string and anything after it are dropped).
  std::string push(std::string_view text);
  // Releases what is held back (end of generation without a stop string).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace octet::engine
