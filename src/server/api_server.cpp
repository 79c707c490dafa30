#include "server/api_server.h"

#include "common/error.h"
#include "engine/model_loader.h"
#include "engine/scheduler.h"
#include "runtime/metrics.h"
#include "server/client_connection.h"
#include "server/openai_protocol.h"
#include "server/prometheus.h"

#include <httplib.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <ctime>
#include <mutex>
#include <thread>

namespace octet::server {

using nlohmann::json;

bool constant_time_equals(const std::string& a, const std::string& b) {
  // Every byte of the longer string is visited whatever the contents; only the lengths leak.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

namespace {

using Clock = std::chrono::steady_clock;

// What the scheduler's thread hands to the connection's thread: text as it comes, then the outcome.
struct Channel {
  std::mutex mutex;
  std::condition_variable changed;
  std::string pending;
  bool done = false;
  engine::RequestOutcome outcome;
  std::atomic<bool> client_gone{false};
};

void send_error(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_error(res, e.status, e.body()); }

// Connections being answered, so shutdown can wait for their last bytes.
class ActiveGuard {
 public:
  explicit ActiveGuard(std::atomic<int>& count) : count_(count) { ++count_; }
  ~ActiveGuard() { --count_; }

 private:
  std::atomic<int>& count_;
};

}  // namespace

struct ApiServer::Impl {
  engine::LoadedModel& model;
  engine::Scheduler& scheduler;
  runtime::MetricsRegistry& metrics;
  ServerOptions options;
  httplib::Server http;
  std::atomic<bool> draining{false};
  std::atomic<int> active{0};
  std::atomic<uint64_t> next_response_id{1};
  std::once_flag shutdown_once;
  int port = 0;
  int listen_socket = -1;
  const int64_t started = static_cast<int64_t>(std::time(nullptr));

  Impl(engine::LoadedModel& m, engine::Scheduler& s, runtime::MetricsRegistry& r, ServerOptions o)
      : model(m), scheduler(s), metrics(r), options(std::move(o)) {
    const int threads = std::max(options.http_threads, 4);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http.set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
    // httplib listens with a backlog of 5: a burst of clients connecting at once would have their
    // handshakes dropped and retried for seconds. Remember the socket to widen the backlog in bind().
    http.set_socket_options([this](int sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_socket = sock;
    });
    http.set_read_timeout(10);
    http.set_write_timeout(10);
    routes();
  }

  std::string resolve_model(const std::string& requested) const {
    if (requested.empty() || requested == options.model_id) return options.model_id;
    for (const auto& alias : options.model_aliases)
      if (requested == alias) return options.model_id;
    throw ApiError(404, fmt::format("The model '{}' does not exist; this server serves '{}'", requested, options.model_id),
                   "invalid_request_error", "model", "model_not_found");
  }

  void routes() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (options.api_key.empty() || !req.path.starts_with("/v1/")) return httplib::Server::HandlerResponse::Unhandled;
      const std::string header = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      const std::string given = header.starts_with(prefix) ? header.substr(prefix.size()) : std::string();
      if (constant_time_equals(given, options.api_key)) return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, 401,
                 error_body(header.empty() ? "Missing API key: send 'Authorization: Bearer <key>'" : "Incorrect API key provided",
                            "invalid_request_error", "", "invalid_api_key"));
      return httplib::Server::HandlerResponse::Handled;
    });
    // httplib's own refusals (unknown route, body over the limit, unreadable request) arrive here
    // with an empty body; give them OpenAI's error shape.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string message = fmt::format("HTTP {}", res.status), code;
      if (res.status == 404) {
        message = fmt::format("Unknown route: {} {}", req.method, req.path);
        code = "unknown_url";
      } else if (res.status == 413) {
        message = fmt::format("The request body is over the limit of {} bytes", options.max_body_bytes);
        code = "request_too_large";
      } else if (res.status == 400) {
        message = "The request could not be read as HTTP";
      }
      res.set_content(error_body(message, res.status >= 500 ? "server_error" : "invalid_request_error", "", code).dump(),
                      "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
      std::string message = "internal error";
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        message = e.what();
      } catch (...) {
      }
      spdlog::error("request failed: {}", message);
      send_error(res, 500, error_body(message, "server_error"));
    });
    http.set_logger([this](const httplib::Request&, const httplib::Response& res) { metrics.count_http_status(res.status); });

    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (draining) return send_error(res, 503, error_body("the server is shutting down", "server_error"));
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json entry{{"id", options.model_id},
                 {"object", "model"},
                 {"created", started},
                 {"owned_by", "octet"},
                 {"max_model_len", scheduler.state().context}};
      res.set_content(json{{"object", "list"}, {"data", json::array({entry})}}.dump(), "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      const bool on_gpu = model.backend->name() == "cuda";
      res.set_content(render_prometheus(metrics.serving_snapshot(), read_memory_gauges(on_gpu)),
                      "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      generate(Endpoint::chat, req, res);
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      generate(Endpoint::completion, req, res);
    });
  }

  std::vector<int32_t> prompt_ids(const ApiRequest& r) const {
    if (r.endpoint == Endpoint::chat) return engine::chat_prompt_ids(*model.tokenizer, r.messages);
    if (!r.prompt_is_ids) {
      if (r.prompt.empty()) throw ApiError(400, "'prompt' is empty", "invalid_request_error", "prompt");
      return engine::completion_prompt_ids(*model.tokenizer, r.prompt);
    }
    for (int32_t id : r.prompt_ids)
      if (id >= model.config.vocab)
        throw ApiError(400, fmt::format("'prompt' holds token id {}; the vocabulary has {}", id, model.config.vocab),
                       "invalid_request_error", "prompt");
    return r.prompt_ids;
  }

  void generate(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
    ActiveGuard guard(active);
    try {
      if (draining) throw ApiError(503, "the server is shutting down", "server_error");
      ApiRequest r = parse_request(endpoint, req.body, options.defaults);
      const std::string model_id = resolve_model(r.model);
      std::vector<int32_t> prompt = prompt_ids(r);
      const int64_t context = scheduler.state().context;
      const auto prompt_tokens = static_cast<int64_t>(prompt.size());
      const char* what = endpoint == Endpoint::chat ? "messages" : "prompt";
      if (prompt_tokens >= context)
        throw ApiError(400, fmt::format("This model's maximum context length is {} tokens. However, your {} resulted in {} "
                                        "tokens, leaving no room to generate.", context, what, prompt_tokens),
                       "invalid_request_error", what, "context_length_exceeded");
      if (r.max_tokens) {
        if (prompt_tokens + *r.max_tokens > context)
          throw ApiError(400, fmt::format("This model's maximum context length is {} tokens. However, you requested {} "
                                          "tokens ({} in the {}, {} in the completion).", context,
                                          prompt_tokens + *r.max_tokens, prompt_tokens, what, *r.max_tokens),
                         "invalid_request_error", "max_tokens", "context_length_exceeded");
        r.params.max_tokens = *r.max_tokens;
      } else {
        r.params.max_tokens = static_cast<int>(std::min<int64_t>(options.defaults.max_tokens, context - prompt_tokens));
      }
      run(endpoint, req, r, model_id, std::move(prompt), res);
    } catch (const ApiError& e) {
      send_error(res, e);
    }
  }

  uint64_t submit(std::vector<int32_t> prompt, const GenerationParams& params, const std::shared_ptr<Channel>& channel) {
    engine::RequestSpec spec;
    spec.prompt = std::move(prompt);
    spec.params = params;
    spec.on_text = [channel](std::string_view piece) {
      {
        std::lock_guard lock(channel->mutex);
        channel->pending.append(piece);
      }
      channel->changed.notify_all();
      return !channel->client_gone.load();
    };
    spec.on_finish = [channel](const engine::RequestOutcome& outcome) {
      {
        std::lock_guard lock(channel->mutex);
        channel->outcome = outcome;
        channel->done = true;
      }
      channel->changed.notify_all();
    };
    try {
      return scheduler.submit(std::move(spec));
    } catch (const engine::RequestRejected& e) {
      if (e.reason == engine::RequestRejected::Reason::shutting_down) throw ApiError(503, e.what(), "server_error");
      throw ApiError(400, e.what(), "invalid_request_error", "",
                     e.reason == engine::RequestRejected::Reason::too_large ? "context_length_exceeded" : "");
    }
  }

  static ApiError outcome_error(const engine::RequestOutcome& outcome) {
    if (outcome.finish_reason == "error") return ApiError(500, "generation failed: " + outcome.error, "server_error");
    return ApiError(503, "the request was aborted: the server is shutting down", "server_error");
  }

  void run(Endpoint endpoint, const httplib::Request& req, const ApiRequest& r, const std::string& model_id,
           std::vector<int32_t> prompt, httplib::Response& res) {
    auto channel = std::make_shared<Channel>();
    const uint64_t request_id = submit(std::move(prompt), r.params, channel);
    const std::string id = fmt::format("{}-{:x}{:08x}", endpoint == Endpoint::chat ? "chatcmpl" : "cmpl",
                                       static_cast<uint64_t>(started), next_response_id++);
    const auto created = static_cast<int64_t>(std::time(nullptr));
    if (!r.stream) {
      // Nothing is written until the end, so a client that leaves is found by looking at its socket;
      // its request is then aborted (its blocks freed at the next step) and the wait goes on to the end.
      const ClientConnection connection(req);
      std::unique_lock lock(channel->mutex);
      while (!channel->changed.wait_for(lock, std::chrono::milliseconds(250), [&] { return channel->done; }))
        if (!channel->client_gone && connection.closed()) {
          channel->client_gone = true;
          scheduler.cancel(request_id);
        }
      const engine::RequestOutcome& o = channel->outcome;
      if (o.finish_reason == "abort" || o.finish_reason == "error") throw outcome_error(o);
      const Usage usage{o.result.prompt_tokens, o.result.completion_tokens};
      res.set_content((endpoint == Endpoint::chat ? chat_response(id, created, model_id, o.result.text, o.finish_reason, usage)
                                                  : completion_response(id, created, model_id, o.result.text, o.finish_reason, usage))
                          .dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json");
      return;
    }
    stream(endpoint, r, id, created, model_id, request_id, channel, res);
  }

  void stream(Endpoint endpoint, const ApiRequest& r, const std::string& id, int64_t created, const std::string& model_id,
              uint64_t request_id, const std::shared_ptr<Channel>& channel, httplib::Response& res) {
    const bool usage_null = r.include_usage;
    auto started_stream = std::make_shared<bool>(false);
    auto last_write = std::make_shared<Clock::time_point>(Clock::now());
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [=, this](size_t, httplib::DataSink& sink) {
          std::string out;
          if (!*started_stream) {
            *started_stream = true;
            if (endpoint == Endpoint::chat) out += sse_event(chat_chunk(id, created, model_id, "", "", true, usage_null));
          }
          std::string text;
          bool done = false;
          engine::RequestOutcome outcome;
          {
            std::unique_lock lock(channel->mutex);
            channel->changed.wait_for(lock, std::chrono::milliseconds(250),
                                      [&] { return !channel->pending.empty() || channel->done; });
            text.swap(channel->pending);
            done = channel->done;
            if (done) outcome = channel->outcome;
          }
          if (!text.empty())
            out += sse_event(endpoint == Endpoint::chat ? chat_chunk(id, created, model_id, text, "", false, usage_null)
                                                        : completion_chunk(id, created, model_id, text, "", usage_null));
          if (done) {
            if (outcome.finish_reason == "abort" || outcome.finish_reason == "error") {
              out += sse_event(outcome_error(outcome).body());
            } else {
              out += sse_event(endpoint == Endpoint::chat
                                   ? chat_chunk(id, created, model_id, "", outcome.finish_reason, false, usage_null)
                                   : completion_chunk(id, created, model_id, "", outcome.finish_reason, usage_null));
              if (r.include_usage)
                out += sse_event(usage_chunk(endpoint, id, created, model_id,
                                             Usage{outcome.result.prompt_tokens, outcome.result.completion_tokens}));
            }
            out += kSseDone;
          }
          // While the request waits or prefills, a comment line now and then finds clients that left.
          if (out.empty() && Clock::now() - *last_write > std::chrono::seconds(1)) out = ": keep-alive\n\n";
          if (!out.empty()) {
            *last_write = Clock::now();
            if (!sink.write(out.data(), out.size())) {
              channel->client_gone = true;
              scheduler.cancel(request_id);
              return false;
            }
          }
          if (done) sink.done();
          return true;
        },
        [=, this](bool success) {
          std::lock_guard lock(channel->mutex);
          if (!channel->done) {  // the client left (or the listener stopped) before the end
            channel->client_gone = true;
            scheduler.cancel(request_id);
          }
        });
  }

  void shutdown() {
    std::call_once(shutdown_once, [this] {
      draining = true;
      spdlog::info("shutting down: refusing new requests, draining in-flight ones for up to {} ms",
                   options.drain.count());
      scheduler.shutdown(options.drain);
      // Handlers now see their requests finished or aborted; give them a moment to write the end.
      const auto deadline = Clock::now() + std::chrono::seconds(2);
      while (active.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      http.stop();
    });
  }
};

ApiServer::ApiServer(engine::LoadedModel& model, engine::Scheduler& scheduler, runtime::MetricsRegistry& metrics,
                     ServerOptions options)
    : impl_(std::make_unique<Impl>(model, scheduler, metrics, std::move(options))) {}

ApiServer::~ApiServer() = default;

int ApiServer::bind() {
  auto& i = *impl_;
  if (i.options.port == 0) i.port = i.http.bind_to_any_port(i.options.host);
  else i.port = i.http.bind_to_port(i.options.host, i.options.port) ? i.options.port : -1;
  if (i.port <= 0) fail("server: cannot listen on {}:{} (address in use, or not an address of this machine)", i.options.host, i.options.port);
  if (i.listen_socket >= 0) ::listen(i.listen_socket, SOMAXCONN);  // Linux: a second listen() resizes the backlog
  return i.port;
}

void ApiServer::serve() {
  if (!impl_->http.listen_after_bind() && !impl_->draining) fail("server: listening on port {} failed", impl_->port);
}

void ApiServer::shutdown() { impl_->shutdown(); }

}  // namespace octet::server
