// Reading an OpenAI-compatible server's answers (no HTTP here: the bodies are given).
#include "planner/chat_completion_response.h"
#include "support/error_text.h"

#include <gtest/gtest.h>

#include <string>

namespace octet::planner {
namespace {

const std::string kUrl = "http://api.test/v1/chat/completions";

TEST(ChatCompletionResponse, ReadsTheContentAndTheUsage) {
  const auto c = parse_chat_completion(
      R"({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Mine iron ore."}}],
          "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}})",
      kUrl);
  EXPECT_EQ(c.text, "Mine iron ore.");
  EXPECT_EQ(c.prompt_tokens, 12);
  EXPECT_EQ(c.completion_tokens, 4);
  // usage absent or null, or a count null: 0.
  const auto bare = parse_chat_completion(R"({"choices": [{"message": {"content": ""}}], "usage": null})", kUrl);
  EXPECT_EQ(bare.text, "");
  EXPECT_EQ(bare.prompt_tokens, 0);
  EXPECT_EQ(parse_chat_completion(R"({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": null}})", kUrl)
                .prompt_tokens,
            0);
}

TEST(ChatCompletionResponse, MalformedAnswersNameTheUrlAndTheField) {
  const auto error = [](const std::string& body) { return testing::error_of([&] { parse_chat_completion(body, kUrl); }); };
  testing::expect_parts(error(""), {kUrl, "not JSON"});
  testing::expect_parts(error("[1]"), {kUrl, "not a JSON object"});
  // Bytes that are not UTF-8 are shown escaped (fmt's {:?} aborted the process on these: a fuzz finding).
  testing::expect_parts(error("\xd4\xdf\xdd\x8b odel"), {kUrl, "not JSON", "\"\\xd4\\xdf\\xdd\\x8b odel\""});
  testing::expect_parts(error(R"({"choices": []})"), {kUrl, "choices[]"});
  testing::expect_parts(error(R"({"choices": [{"message": {"content": 3}}]})"), {kUrl, "choices[0].message.content"});
  testing::expect_parts(error(R"({"choices": [7]})"), {kUrl, "choices[0].message.content"});
  // Counts of the wrong type were an uncaught JSON library exception naming neither.
  testing::expect_parts(error(R"({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "12"}})"),
                        {kUrl, "usage.prompt_tokens", "non-negative integer", "\"12\""});
  testing::expect_parts(error(R"({"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": -1}})"),
                        {kUrl, "usage.completion_tokens"});
  testing::expect_parts(error(R"({"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": 1.5}})"),
                        {kUrl, "usage.completion_tokens"});
  testing::expect_parts(error(R"({"choices": [{"message": {"content": "x"}}], "usage": [1]})"), {kUrl, "usage must be an object"});
}

TEST(ChatCompletionResponse, ErrorMessagesComeFromTheBodyWhenItHasOne) {
  EXPECT_EQ(error_message_of(R"({"error": {"message": "Rate limit reached", "type": "requests"}})"), "Rate limit reached");
  EXPECT_EQ(error_message_of(R"({"error": {"message": 429}})"), R"({"error": {"message": 429}})");
  EXPECT_EQ(error_message_of("<html>Bad gateway</html>"), "<html>Bad gateway</html>");
  EXPECT_EQ(error_message_of(std::string(300, 'x')), std::string(200, 'x'));
}

}  // namespace
}  // namespace octet::planner
