#include "engine/stop_strings.h"

#include <gtest/gtest.h>

namespace octet::engine {
namespace {

std::string feed(StopStringFilter& f, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += f.push(p);
  return out;
}

TEST(StopStrings, StopStringSplitAcrossPiecesIsCutAndNotReleased) {
  StopStringFilter f({"\nUser:"});
  std::string out = feed(f, {"Hello", " world\n", "Us", "er: more"});
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(out + f.flush(), "Hello world");
}

TEST(StopStrings, PartialPrefixIsHeldBackThenReleased) {
  StopStringFilter f({"STOP"});
  EXPECT_EQ(f.push("abcST"), "abc");
  EXPECT_EQ(f.push("ay"), "STay");
  EXPECT_FALSE(f.stopped());
  EXPECT_EQ(f.push("ST"), "");
  EXPECT_EQ(f.flush(), "ST");
}

TEST(StopStrings, EarliestOfSeveralStopsWins) {
  StopStringFilter f({"b", "abc"});
  EXPECT_EQ(f.push("xxabcd"), "xx");  // "abc" starts before "b"
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.push("more"), "");
}

TEST(StopStrings, NoStopsPassesEverythingThrough) {
  StopStringFilter f({});
  EXPECT_EQ(f.push("any text"), "any text");
  EXPECT_EQ(f.flush(), "");
}

}  // namespace
}  // namespace octet::engine
