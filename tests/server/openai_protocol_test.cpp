// Request parsing and response building of the OpenAI wire format, without a server: the accepted
// spellings (content parts, developer role, max_completion_tokens, top_k -1, stop as a string) and
// the exact chunk/response shapes clients rely on.
#include "server/openai_protocol.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace octet::server {
namespace {

using nlohmann::json;

GenerationParams defaults() {
  GenerationParams p;
  p.temperature = 0.7f;
  p.top_p = 0.9f;
  p.max_tokens = 99;
  return p;
}

TEST(OpenAiProtocol, ChatRequestWithEveryParameter) {
  const ApiRequest r = parse_request(Endpoint::chat, R"({
    "model": "m", "messages": [{"role": "developer", "content": "Be brief."},
                               {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "you"}]},
                               {"role": "assistant", "content": null}],
    "max_tokens": 5, "max_completion_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": -1, "min_p": 0.1,
    "seed": -3, "stop": "END", "stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true,
    "user": "ignored", "presence_penalty": 0})", defaults());
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hello, you");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_EQ(r.params.temperature, 0.0f);
  EXPECT_EQ(r.params.top_p, 0.5f);
  EXPECT_EQ(r.params.top_k, 0);
  EXPECT_FLOAT_EQ(r.params.min_p, 0.1f);
  EXPECT_EQ(r.params.seed, static_cast<uint64_t>(-3));
  EXPECT_EQ(r.params.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.params.ignore_eos);
}

TEST(OpenAiProtocol, AbsentAndNullFieldsTakeTheDefaults) {
  const ApiRequest r = parse_request(Endpoint::completion, R"({"prompt": ["one"], "temperature": null, "stop": [""]})", defaults());
  EXPECT_EQ(r.prompt, "one");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_FLOAT_EQ(r.params.temperature, 0.7f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_TRUE(r.params.stop.empty());
  EXPECT_FALSE(r.stream);
  const ApiRequest ids = parse_request(Endpoint::completion, R"({"prompt": [1, 2, 3]})", defaults());
  EXPECT_TRUE(ids.prompt_is_ids);
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
}

TEST(OpenAiProtocol, ErrorsNameTheParameter) {
  auto param_of = [](Endpoint e, const std::string& body) {
    try {
      parse_request(e, body, defaults());
    } catch (const ApiError& error) {
      EXPECT_EQ(error.status, 400);
      return error.param;
    }
    return std::string("<accepted>");
  };
  EXPECT_EQ(param_of(Endpoint::chat, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})"), "messages[0].content");
  EXPECT_EQ(param_of(Endpoint::chat, R"({"messages":[{"role":"user"}]})"), "messages[0].content");
  // A part's type of another JSON type was an uncaught JSON exception (a fuzz finding).
  EXPECT_EQ(param_of(Endpoint::chat, R"({"messages":[{"role":"user","content":[{"type":1,"text":"a"}]}]})"), "messages[0].content");
  EXPECT_EQ(param_of(Endpoint::chat, R"({"messages":[{"role":"user","content":[{"text":"a"}]}]})"), "messages[0].content");
  EXPECT_EQ(param_of(Endpoint::completion, R"({"prompt":["a","b"]})"), "prompt");
  EXPECT_EQ(param_of(Endpoint::completion, R"({"prompt":[1,-2]})"), "prompt");
  EXPECT_EQ(param_of(Endpoint::completion, R"({"prompt":"a","stream_options":{"include_usage":true},"stream":true,"seed":1e30})"), "seed");
  EXPECT_EQ(param_of(Endpoint::completion, R"({"prompt":"a","ignore_eos":1})"), "ignore_eos");
  EXPECT_EQ(param_of(Endpoint::completion, R"({"prompt":"a","repetition_penalty":0})"), "repetition_penalty");
}

// Integers at the edges of their ranges, as integers and as integral floats. A float of 2^63 passed the
// range check (INT64_MAX as a double rounds up to 2^63) and its conversion was undefined: a fuzz finding.
TEST(OpenAiProtocol, IntegerFieldsAtTheEdgesOfTheirRanges) {
  auto param_of = [](const std::string& fields) {
    try {
      parse_request(Endpoint::completion, R"({"prompt": "a", )" + fields + "}", defaults());
    } catch (const ApiError& error) {
      return error.param;
    }
    return std::string("<accepted>");
  };
  auto seed_of = [](const std::string& value) {
    return parse_request(Endpoint::completion, R"({"prompt": "a", "seed": )" + value + "}", defaults()).params.seed;
  };
  EXPECT_EQ(param_of(R"("seed": 9223372036854775808.0)"), "seed");
  EXPECT_EQ(param_of(R"("seed": 9223372036854775808)"), "seed");
  EXPECT_EQ(param_of(R"("seed": 18446744073709551615)"), "seed");
  EXPECT_EQ(param_of(R"("seed": -9223372036854777856.0)"), "seed");
  EXPECT_EQ(seed_of("9223372036854775807"), static_cast<uint64_t>(INT64_MAX));
  EXPECT_EQ(seed_of("-9223372036854775808"), static_cast<uint64_t>(INT64_MIN));
  EXPECT_EQ(seed_of("-9223372036854775808.0"), static_cast<uint64_t>(INT64_MIN));
  EXPECT_EQ(seed_of("4611686018427387904.0"), uint64_t{1} << 62);
  EXPECT_EQ(param_of(R"("max_tokens": 0)"), "max_tokens");
  EXPECT_EQ(param_of(R"("max_tokens": 2147483648)"), "max_tokens");
  EXPECT_EQ(param_of(R"("max_tokens": 2147483648.0)"), "max_tokens");
  EXPECT_EQ(param_of(R"("max_tokens": 1.5)"), "max_tokens");
  EXPECT_EQ(param_of(R"("max_tokens": -1)"), "max_tokens");
  EXPECT_EQ(param_of(R"("max_tokens": 2147483647, "top_k": -1, "n": 1.0)"), "<accepted>");
  EXPECT_EQ(param_of(R"("top_k": -2)"), "top_k");
  EXPECT_EQ(param_of(R"("n": 2)"), "n");
  EXPECT_EQ(parse_request(Endpoint::completion, R"({"prompt": "a", "max_tokens": 3.0})", defaults()).max_tokens, 3);
}

TEST(OpenAiProtocol, ResponseAndChunkShapes) {
  const json chat = chat_response("chatcmpl-1", 5, "m", "hi", "stop", Usage{3, 1});
  EXPECT_EQ(chat["choices"][0]["message"], (json{{"role", "assistant"}, {"content", "hi"}}));
  EXPECT_EQ(chat["usage"], (json{{"prompt_tokens", 3}, {"completion_tokens", 1}, {"total_tokens", 4}}));
  const json first = chat_chunk("c", 5, "m", "", "", true, false);
  EXPECT_EQ(first["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(first.contains("usage"));
  const json last = chat_chunk("c", 5, "m", "", "length", false, true);
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(last.contains("usage") && last["usage"].is_null());
  const json usage = usage_chunk(Endpoint::completion, "c", 5, "m", Usage{2, 2});
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["object"], "text_completion");
  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(error_body("x", "invalid_request_error")["error"]["param"], nullptr);
}

}  // namespace
}  // namespace octet::server
