#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace octet::tokenizer {
namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."},
    {"user", "Hi there"},
    {"assistant", "Hello!"},
    {"user", "What is 2+2?"},
};

TEST(ChatTemplate, ChatMl) {
  EXPECT_EQ(render_chat(ChatTemplate::chatml, kConversation, "Default.", true),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi there<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatTemplate::chatml, {{"user", "Hi"}}, "", false), "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplate, ChatMlInsertsDefaultSystemOnlyWhenFirstIsNotSystem) {
  EXPECT_EQ(render_chat(ChatTemplate::chatml, {{"user", "Hi"}, {"assistant", "Yo"}}, "Default.", true),
            "<|im_start|>system\nDefault.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nYo<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatTemplate::chatml, {{"system", "Mine."}, {"user", "Hi"}}, "Default.", true),
            "<|im_start|>system\nMine.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // SmolLM2's template adds the default inside its message loop: no messages, no system turn.
  EXPECT_EQ(render_chat(ChatTemplate::chatml, {}, "Default.", true), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, Llama3) {
  EXPECT_EQ(render_chat(ChatTemplate::llama3, kConversation, "ignored", true),
            "<|begin_of_text|>"
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Llama 3's template trims each message's content.
  EXPECT_EQ(render_chat(ChatTemplate::llama3, {{"user", "  padded \n"}}, "", false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>");
}

TEST(ChatTemplate, ChosenFromTemplateText) {
  EXPECT_EQ(chat_template_from_text("{{'<|im_start|>' + message['role']}}"), ChatTemplate::chatml);
  EXPECT_EQ(chat_template_from_text("{{ '<|start_header_id|>' + message['role'] }}"), ChatTemplate::llama3);
  EXPECT_EQ(chat_template_from_text("{{ '[INST]' }}"), std::nullopt);
  EXPECT_EQ(chat_template_from_text(""), std::nullopt);
}

TEST(ChatTemplate, DefaultSystemPromptReadFromTemplate) {
  // SmolLM2's template as stored in its GGUF (real newlines inside the Jinja string literals).
  const std::string smollm2 =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
      "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  EXPECT_EQ(default_system_prompt_from_template(smollm2),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  // The same shape with Jinja "\n" escapes and double quotes.
  EXPECT_EQ(default_system_prompt_from_template(
                "{% if messages[0][\"role\"] != \"system\" %}{{ \"<|im_start|>system\\nBe kind.\\nAlways.<|im_end|>\\n\" }}"),
            "Be kind.\nAlways.");
  // No default branch: nothing is inserted (the template's other system header is not a default).
  EXPECT_EQ(default_system_prompt_from_template(
                "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}{% endfor %}"),
            "");
  // A default that is not a plain literal: fall back to SmolLM2's text rather than guess.
  EXPECT_EQ(default_system_prompt_from_template(
                "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n' + default_prompt + '<|im_end|>\n' }}"),
            std::string(kSmolLmDefaultSystemPrompt));
}

TEST(ChatTemplate, TokenizerUsesItsModelsTemplate) {
  const Tokenizer smollm = Tokenizer::from_hf_files(testing::fixture_path("tiny_smollm_tokenizer/tokenizer.json"));
  EXPECT_EQ(smollm.chat_template(), ChatTemplate::chatml);
  EXPECT_EQ(smollm.apply_chat_template({{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const Tokenizer llama3 = Tokenizer::from_hf_files(testing::fixture_path("tiny_llama3_tokenizer/tokenizer.json"));
  EXPECT_EQ(llama3.chat_template(), ChatTemplate::llama3);
  EXPECT_EQ(llama3.default_system_prompt(), "");
  const std::string prompt = llama3.apply_chat_template({{"user", "Hi"}});
  EXPECT_EQ(prompt,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // The rendered prompt already holds the BOS token.
  EXPECT_EQ(llama3.encode(prompt).front(), llama3.bos_id());
}

TEST(ChatTemplate, FallsBackToTheVocabularysFamily) {
  TokenizerSpec spec;
  spec.source = "no-template";
  for (const char* token : {"a", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}) spec.tokens.push_back(token);
  spec.token_types = {TokenType::normal, TokenType::control, TokenType::control, TokenType::control};
  EXPECT_EQ(Tokenizer::from_spec(spec).chat_template(), ChatTemplate::llama3);
  spec.tokens[1] = "<|im_start|>";
  EXPECT_EQ(Tokenizer::from_spec(spec).chat_template(), ChatTemplate::chatml);
}

}  // namespace
}  // namespace octet::tokenizer
