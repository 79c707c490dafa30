#pragma once
// The OpenAI-compatible HTTP server over the scheduler: routes, authentication, request checks,
// SSE streaming, /health, /v1/models and /metrics. cpp-httplib does the HTTP; one pooled thread per
// connection waits on its request while the scheduler's thread generates for all of them.
#include "octet/engine.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace octet::engine {
class Scheduler;
struct LoadedModel;
}  // namespace octet::engine
namespace octet::runtime {
class MetricsRegistry;
}

namespace octet::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;          // 0: any free port (see bound_port)
  std::string api_key;      // empty: no authentication; else /v1/* needs "Authorization: Bearer <key>"
  int64_t max_body_bytes = 1 << 20;
  int http_threads = 64;    // connections served at once (each streaming client holds one)
  std::string model_id;     // the name /v1/models lists; requests may also name model_aliases
  std::vector<std::string> model_aliases;
  GenerationParams defaults;  // sampling a request leaves out; defaults.max_tokens caps the default length
  std::chrono::milliseconds drain{10000};  // shutdown: how long in-flight requests may run on
};

class ApiServer {
 public:
  ApiServer(engine::LoadedModel& model, engine::Scheduler& scheduler, runtime::MetricsRegistry& metrics,
            ServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the listening socket (throws octet::Error naming host:port when it cannot); returns the port.
  int bind();
  // Serves until shutdown() (blocks the calling thread).
  void serve();
  // Any thread, once: new requests get 503, in-flight ones finish or are aborted within the drain
  // time, then the listener stops and serve() returns.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Equal length and bytes, in time that depends only on the lengths (API keys).
bool constant_time_equals(const std::string& a, const std::string& b);

}  // namespace octet::server
