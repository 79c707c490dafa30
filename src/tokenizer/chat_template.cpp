#include "tokenizer/chat_template.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace octet::tokenizer {
namespace {

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// Reads the literal between "<|im_start|>system" + newline and "<|im_end|>". The newline may be
// a real one (the usual JSON-decoded template) or a Jinja "\n" escape; anything that is not a
// plain literal (quotes ending the string, Jinja expressions) makes us give up.
std::optional<std::string> literal_system_prompt(std::string_view text) {
  constexpr std::string_view kHeader = "<|im_start|>system";
  const size_t header = text.find(kHeader);
  if (header == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(header + kHeader.size());
  if (rest.starts_with("\n")) rest.remove_prefix(1);
  else if (rest.starts_with("\\n")) rest.remove_prefix(2);
  else return std::nullopt;
  const size_t end = rest.find("<|im_end|>");
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view literal = rest.substr(0, end);
  if (literal.find_first_of("'\"{}") != std::string_view::npos) return std::nullopt;
  std::string prompt;
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size() && literal[i + 1] == 'n') {
      prompt.push_back('\n');
      ++i;
    } else {
      prompt.push_back(literal[i]);
    }
  }
  if (prompt.empty()) return std::nullopt;
  return prompt;
}

}  // namespace

std::optional<ChatTemplate> chat_template_from_text(std::string_view template_text) {
  if (contains(template_text, "<|im_start|>")) return ChatTemplate::chatml;
  if (contains(template_text, "<|start_header_id|>")) return ChatTemplate::llama3;
  return std::nullopt;
}

std::string default_system_prompt_from_template(std::string_view template_text) {
  const bool has_default = contains(template_text, "!= 'system'") || contains(template_text, "!= \"system\"");
  if (!has_default) return "";
  const size_t condition = std::min(template_text.find("!= 'system'"), template_text.find("!= \"system\""));
  if (auto prompt = literal_system_prompt(template_text.substr(condition))) return *prompt;
  spdlog::warn("chat template inserts a default system message that could not be read; using SmolLM2's");
  return std::string(kSmolLmDefaultSystemPrompt);
}

std::string render_chat(ChatTemplate format, const std::vector<ChatMessage>& messages,
                        const std::string& default_system_prompt, bool add_generation_prompt) {
  std::string out;
  if (format == ChatTemplate::chatml) {
    auto turn = [&](std::string_view role, std::string_view content) {
      out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
    };
    const bool starts_with_system = !messages.empty() && messages.front().role == "system";
    // SmolLM2's template adds the default inside its message loop, so no messages means no turn.
    if (!messages.empty() && !starts_with_system && !default_system_prompt.empty()) {
      turn("system", default_system_prompt);
    }
    for (const ChatMessage& message : messages) turn(message.role, message.content);
    if (add_generation_prompt) out.append("<|im_start|>assistant\n");
    return out;
  }
  // Llama 3's template trims every message's content.
  out.append("<|begin_of_text|>");
  for (const ChatMessage& message : messages) {
    out.append("<|start_header_id|>").append(message.role).append("<|end_header_id|>\n\n");
    out.append(trim(message.content)).append("<|eot_id|>");
  }
  if (add_generation_prompt) out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return out;
}

}  // namespace octet::tokenizer
