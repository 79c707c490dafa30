#pragma once
// The chat formats of the models we run, rendered in C++ (no Jinja): ChatML (SmolLM2, Qwen…) and
// Llama 3. Which one applies is read from the model's own template text.
#include <string>
#include <vector>

namespace octet::tokenizer {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Kind { chatml, llama3 };

  ChatTemplate() = default;
  ChatTemplate(Kind kind, std::string default_system_prompt = "")
      : kind_(kind), default_system_prompt_(std::move(default_system_prompt)) {}
  // Chooses the kind from a Jinja template's text (and the default system prompt ChatML templates
  // such as SmolLM2's insert when the conversation has none). fallback applies to unknown texts.
  static ChatTemplate from_template_text(const std::string& jinja, Kind fallback, const std::string& source);

  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  Kind kind() const { return kind_; }
  const std::string& default_system_prompt() const { return default_system_prompt_; }

 private:
  Kind kind_ = Kind::chatml;
  std::string default_system_prompt_;
};

}  // namespace octet::tokenizer
