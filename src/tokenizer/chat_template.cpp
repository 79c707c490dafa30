#include "tokenizer/chat_template.h"

#include "common/error.h"

#include <spdlog/spdlog.h>

namespace octet::tokenizer {

ChatTemplate ChatTemplate::from_template_text(const std::string& jinja, Kind fallback, const std::string& source) {
  if (jinja.find("<|start_header_id|>") != std::string::npos) return ChatTemplate(Kind::llama3);
  if (jinja.find("<|im_start|>") != std::string::npos) {
    // SmolLM2's template writes a default system turn as a literal: '<|im_start|>system\n…<|im_end|>'.
    const std::string open = "<|im_start|>system\n";
    std::string system;
    if (auto begin = jinja.find(open); begin != std::string::npos) {
      begin += open.size();
      auto end = jinja.find("<|im_end|>", begin);
      std::string literal = end == std::string::npos ? "" : jinja.substr(begin, end - begin);
      // Only a plain literal qualifies (no Jinja expressions inside).
      if (literal.find("{{") == std::string::npos && literal.find('\'') == std::string::npos &&
          literal.find("{%") == std::string::npos)
        system = literal;
    }
    return ChatTemplate(Kind::chatml, system);
  }
  if (!jinja.empty())
    spdlog::warn("{}: chat template not recognised; using the {} format", source,
                 fallback == Kind::llama3 ? "Llama 3" : "ChatML");
  return ChatTemplate(fallback);
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  for (const auto& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant" && m.role != "tool")
      fail("chat message role '{}' is not one of system, user, assistant, tool", m.role);
  std::string out;
  if (kind_ == Kind::llama3) {
    out = "<|begin_of_text|>";
    for (const auto& m : messages) out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
  }
  if (!default_system_prompt_.empty() && (messages.empty() || messages.front().role != "system"))
    out += "<|im_start|>system\n" + default_system_prompt_ + "<|im_end|>\n";
  for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace octet::tokenizer
