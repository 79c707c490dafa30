#pragma once
// `octet bench serve`'s load: N concurrent clients streaming /v1/completions with prompts of exactly
// input_tokens token ids and exactly output_tokens generated (ignore_eos), timing each chunk.
#include <cstdint>
#include <string>

namespace octet::server {

struct LoadOptions {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  std::string model;          // "" : the server's own
  int clients = 8;            // requests in flight at once
  int requests = 32;          // in all
  int input_tokens = 128;
  int output_tokens = 64;
  int64_t vocab = 32000;      // prompt ids are drawn below this (ordinary tokens: ids from 256 up)
  uint64_t seed = 1;
};

struct LoadReport {
  int requests = 0, failed = 0;
  std::string first_error;
  double seconds = 0;
  double requests_per_s = 0;
  double output_tokens_per_s = 0;  // generated tokens (from usage) / wall time
  int64_t output_tokens = 0, input_tokens = 0;
  double ttft_p50_ms = 0, ttft_p99_ms = 0;  // request sent → first text chunk
  double itl_p50_ms = 0, itl_p99_ms = 0;    // gaps between text chunks of a request
};

LoadReport run_load(const LoadOptions& options);

}  // namespace octet::server
