#include "server/completion_stream.h"

#include <nlohmann/json.hpp>

namespace octet::server {

StreamEvent read_completion_chunk(std::string_view payload) {
  StreamEvent event;
  if (payload == "[DONE]") {
    event.done = true;
    return event;
  }
  const nlohmann::json chunk = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (chunk.is_discarded() || !chunk.is_object()) {
    event.error = "a stream event is not a JSON object: " + std::string(payload.substr(0, 80));
    return event;
  }
  if (const auto error = chunk.find("error"); error != chunk.end() && !error->is_null()) {
    const auto message = error->is_object() ? error->find("message") : error->end();
    event.error = error->is_object() && message != error->end() && message->is_string() ? message->get<std::string>()
                                                                                       : "error event: " + error->dump();
    return event;
  }
  if (const auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object())
    if (const auto tokens = usage->find("completion_tokens"); tokens != usage->end() && tokens->is_number_integer())
      event.completion_tokens = tokens->get<int64_t>();
  if (const auto choices = chunk.find("choices"); choices != chunk.end() && choices->is_array() && !choices->empty()) {
    const nlohmann::json& first = (*choices)[0];
    if (first.is_object())
      if (const auto text = first.find("text"); text != first.end() && text->is_string())
        event.text = !text->get_ref<const std::string&>().empty();
  }
  return event;
}

void CompletionStream::finish_event(std::vector<StreamEvent>& out) {
  if (has_data_) out.push_back(read_completion_chunk(data_));
  data_.clear();
  has_data_ = false;
}

std::vector<StreamEvent> CompletionStream::push(std::string_view bytes) {
  // buffer_ holds no line end before the new bytes: searching only them keeps a long line linear.
  size_t from = buffer_.size(), start = 0, end;
  buffer_.append(bytes);
  std::vector<StreamEvent> out;
  while ((end = buffer_.find('\n', from)) != std::string::npos) {
    std::string_view line(buffer_.data() + start, end - start);
    start = from = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      finish_event(out);
      continue;
    }
    if (line.substr(0, 5) != "data:") continue;  // a comment or another field
    line.remove_prefix(5);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (has_data_) data_ += '\n';
    data_.append(line);
    has_data_ = true;
  }
  buffer_.erase(0, start);
  return out;
}

}  // namespace octet::server
