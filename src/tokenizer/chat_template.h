#pragma once
// The chat formats we render natively (no Jinja engine): ChatML and Llama 3. The model's Jinja
// template text is only inspected to choose between them and to find a default system prompt.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {

// The system prompt SmolLM2's template inserts; used when the template has such a default but
// its text cannot be read out of it.
inline constexpr std::string_view kSmolLmDefaultSystemPrompt =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

// chatml for templates with <|im_start|>, llama3 for <|start_header_id|>, nullopt otherwise.
std::optional<ChatTemplate> chat_template_from_text(std::string_view template_text);

// The system prompt a ChatML template inserts when the first message is not a system message
// (SmolLM2: `{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n...`),
// or "" when the template has no such branch.
std::string default_system_prompt_from_template(std::string_view template_text);

std::string render_chat(ChatTemplate format, const std::vector<ChatMessage>& messages,
                        const std::string& default_system_prompt, bool add_generation_prompt);

}  // namespace octet::tokenizer
