// The SSE reader of `octet bench serve` on the streams servers send: this one's, CRLF line ends, data
// without the space, events cut anywhere between reads, comments, error events and chunks of other shapes.
#include "server/completion_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace octet::server {
namespace {

const std::string kStream =
    "data: {\"choices\": [{\"index\": 0, \"text\": \"Mine\", \"finish_reason\": null}]}\n\n"
    ": a comment\n\n"
    "data: {\"choices\": [{\"text\": \"\"}]}\n\n"
    "data: {\"choices\": [{\"text\": \" iron\"}]}\n\n"
    "data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 3, \"completion_tokens\": 2}}\n\n"
    "data: [DONE]\n\n";

std::vector<StreamEvent> read_all(const std::string& stream, size_t piece) {
  CompletionStream reader;
  std::vector<StreamEvent> events;
  for (size_t at = 0; at < stream.size(); at += piece)
    for (auto& e : reader.push(std::string_view(stream).substr(at, piece))) events.push_back(e);
  return events;
}

TEST(CompletionStream, ReadsTextUsageAndDoneWhereverTheReadsCut) {
  for (size_t piece : {size_t{1}, size_t{2}, size_t{7}, size_t{64}, kStream.size()}) {
    const auto events = read_all(kStream, piece);
    ASSERT_EQ(events.size(), 5u) << "reads of " << piece;
    EXPECT_TRUE(events[0].text);
    EXPECT_FALSE(events[1].text);
    EXPECT_TRUE(events[2].text);
    EXPECT_FALSE(events[3].text);
    EXPECT_EQ(events[3].completion_tokens, 2);
    EXPECT_TRUE(events[4].done);
    for (const auto& e : events) EXPECT_EQ(e.error, "");
  }
}

TEST(CompletionStream, CrlfLinesDataWithoutTheSpaceAndMultiLineData) {
  const auto events = read_all("data:{\"choices\": [{\"text\": \"a\"}]}\r\n\r\ndata: {\"choices\":\r\ndata: [{\"text\": \"b\"}]}\r\n\r\ndata:[DONE]\r\n\r\n", 3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(events[0].text);
  EXPECT_TRUE(events[1].text);
  EXPECT_TRUE(events[2].done);
}

TEST(CompletionStream, ErrorsAndChunksOfOtherShapesAreEventsNotExceptions) {
  const auto events = read_all(
      "data: {\"error\": {\"message\": \"out of memory\", \"type\": \"server_error\"}}\n\n"
      "data: {\"error\": \"plain\"}\n\n"
      "data: not json\n\n"
      "data: [1, 2]\n\n"
      "data: {\"choices\": {\"text\": \"x\"}}\n\n"
      "data: {\"choices\": [7], \"usage\": {\"completion_tokens\": \"2\"}}\n\n"
      "data: {}\n\n"
      "data: {\"choices\": [{\"text\": \"x\"}]}",  // no blank line yet: not an event
      5);
  ASSERT_EQ(events.size(), 7u);
  EXPECT_EQ(events[0].error, "out of memory");
  EXPECT_EQ(events[1].error, "error event: \"plain\"");
  EXPECT_NE(events[2].error.find("not a JSON object: not json"), std::string::npos);
  EXPECT_NE(events[3].error.find("not a JSON object"), std::string::npos);
  for (size_t i = 4; i < 7; ++i) {
    EXPECT_EQ(events[i].error, "") << i;
    EXPECT_FALSE(events[i].text) << i;
    EXPECT_FALSE(events[i].completion_tokens) << i;
  }
}

}  // namespace
}  // namespace octet::server
