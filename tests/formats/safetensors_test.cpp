// The safetensors reader against files written by the tests' own writer (tests/support), and against
// damaged files: each damage is an octet::Error naming the file and, where one is at fault, the tensor.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "common/error.h"
#include "formats/safetensors.h"
#include "support/random.h"
#include "support/safetensors_writer.h"

namespace octet::safetensors {
namespace {

namespace tw = octet::testing;

std::string parse_error(const std::vector<uint8_t>& bytes, const std::string& source = "damaged.safetensors") {
  try {
    File::parse(bytes, source);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

void expect_message(const std::string& message, std::initializer_list<std::string> parts) {
  EXPECT_NE(message, "<no error>");
  if (std::getenv("OCTET_PRINT_ERRORS")) std::printf("%s\n", message.c_str());
  for (const std::string& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
}

std::vector<uint8_t> header_only(const std::string& json, size_t data_bytes = 0) {
  return tw::safetensors_file(json, std::vector<uint8_t>(data_bytes, 0));
}

TEST(Safetensors, ReadsEveryDtypeWithShapesOffsetsAndValues) {
  std::mt19937_64 rng(tw::test_seed("Safetensors.ReadsEveryDtypeWithShapesOffsetsAndValues"));
  const auto f32 = tw::random_normal(rng, 6);
  const auto bf16 = tw::random_normal(rng, 8);
  const auto f16 = tw::random_normal(rng, 4);
  std::vector<uint8_t> codes(12);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % 256);
  codes[0] = 0x7f;  // NaN stays NaN
  const std::vector<tw::StTensor> tensors = {
      {"a.f32", "F32", {2, 3}, tw::f32_bytes(f32)},
      {"b.bf16", "BF16", {8}, tw::bf16_bytes(bf16)},
      {"c.f16", "F16", {2, 2}, tw::f16_bytes(f16)},
      {"d.fp8", "F8_E4M3", {3, 4}, codes},
      {"e.scalar", "F32", {}, tw::f32_bytes({0.25f})},
      {"f.empty", "I32", {0, 5}, {}},
      {"g.i64", "I64", {1}, std::vector<uint8_t>(8, 1)},
      {"h.u8", "U8", {3}, {1, 2, 3}},
  };
  const auto bytes = tw::safetensors_bytes(tensors, {{"format", "pt"}});
  const File file = File::parse(bytes, "ok.safetensors");
  ASSERT_EQ(file.tensors().size(), tensors.size());
  EXPECT_EQ(file.metadata().at("format"), "pt");
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const TensorInfo& info = file.tensor(t.name);
    EXPECT_EQ(dtype_name(info.dtype), t.dtype);
    EXPECT_EQ(info.shape, t.shape);
    EXPECT_EQ(info.data_begin, offset);
    offset += t.data.size();
    EXPECT_EQ(info.data_end, offset);
    const auto view = file.bytes(info);
    EXPECT_EQ(std::vector<uint8_t>(view.begin(), view.end()), t.data) << t.name;
  }
  EXPECT_EQ(file.to_float(file.tensor("a.f32")), f32);
  const auto b = file.to_float(file.tensor("b.bf16"));
  for (size_t i = 0; i < bf16.size(); ++i) EXPECT_EQ(b[i], tw::bf16_value(tw::bf16_bits(bf16[i])));
  const auto c = file.to_float(file.tensor("c.f16"));
  for (size_t i = 0; i < f16.size(); ++i) EXPECT_NEAR(c[i], f16[i], std::fabs(f16[i]) * 0x1p-11f);
  const auto d = file.to_float(file.tensor("d.fp8"));
  for (size_t i = 0; i < codes.size(); ++i) {
    const float expected = tw::e4m3_value(codes[i]);
    if (std::isnan(expected)) EXPECT_TRUE(std::isnan(d[i]));
    else EXPECT_EQ(d[i], expected) << "code " << int(codes[i]);
  }
  EXPECT_EQ(file.to_float(file.tensor("e.scalar")), std::vector<float>{0.25f});
  EXPECT_EQ(file.tensor("e.scalar").element_count, 1u);
  EXPECT_EQ(file.tensor("f.empty").element_count, 0u);
  expect_message([&] {
    try { file.to_float(file.tensor("g.i64")); } catch (const Error& e) { return std::string(e.what()); }
    return std::string("<no error>");
  }(), {"ok.safetensors", "'g.i64'", "I64"});
}

TEST(Safetensors, OpensAFileOnDisk) {
  const auto dir = std::filesystem::temp_directory_path() / ("octet_st_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "model.safetensors";
  tw::write_bytes(path, tw::safetensors_bytes({{"w", "BF16", {2}, tw::bf16_bytes({1.5f, -2.0f})}}));
  const File file = File::open(path.string());
  EXPECT_EQ(file.to_float(file.tensor("w")), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(file.path(), path.string());
  tw::write_bytes(dir / "empty.safetensors", {});
  try {
    File::open((dir / "empty.safetensors").string());
    ADD_FAILURE() << "empty file parsed";
  } catch (const Error& e) {
    expect_message(e.what(), {"empty.safetensors", "empty file"});
  }
  std::filesystem::remove_all(dir);
}

TEST(Safetensors, EmptyHeaderIsAValidFileWithoutTensors) {
  const File file = File::parse(header_only("{}"), "none.safetensors");
  EXPECT_TRUE(file.tensors().empty());
  expect_message([&] {
    try { file.tensor("x"); } catch (const Error& e) { return std::string(e.what()); }
    return std::string("<no error>");
  }(), {"none.safetensors", "'x'", "missing"});
}

TEST(SafetensorsDamaged, EveryTruncationIsAnErrorNamingTheFile) {
  const auto bytes = tw::safetensors_bytes({{"w", "F32", {2, 2}, tw::f32_bytes({1, 2, 3, 4})},
                                            {"v", "BF16", {3}, tw::bf16_bytes({1, 2, 3})}});
  ASSERT_EQ(parse_error(bytes), "<no error>");
  for (size_t size = 0; size < bytes.size(); ++size) {
    const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
    const std::string message = parse_error(prefix, "cut.safetensors");
    EXPECT_NE(message, "<no error>") << "prefix of " << size << " bytes parsed";
    EXPECT_EQ(message.rfind("cut.safetensors: ", 0), 0u) << message;
  }
  // Cut inside the data section: the tensor whose bytes are missing is named.
  const std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 2);
  expect_message(parse_error(cut), {"damaged.safetensors", "'v'", "truncated"});
}

TEST(SafetensorsDamaged, HeaderLengthPastTheFileOrAboveTheLimit) {
  auto bytes = tw::safetensors_bytes({{"w", "F32", {1}, tw::f32_bytes({1})}});
  bytes[0] = 0xff;
  bytes[1] = 0x10;  // 0x10ff bytes > file
  expect_message(parse_error(bytes), {"damaged.safetensors", "header length 4351", "past the end"});
  std::vector<uint8_t> huge(16, 0);
  huge[7] = 0x01;  // 2^56
  expect_message(parse_error(huge), {"damaged.safetensors", "above the limit"});
  expect_message(parse_error({1, 2, 3}), {"damaged.safetensors", "too small"});
}

TEST(SafetensorsDamaged, BadJson) {
  expect_message(parse_error(header_only("{\"w\": {\"dtype\": \"F32\",")), {"damaged.safetensors", "not valid JSON"});
  expect_message(parse_error(header_only("[1, 2]")), {"damaged.safetensors", "does not start with '{'"});
  expect_message(parse_error(header_only("{\"a\":1} {")), {"not valid JSON"});
  expect_message(parse_error(header_only("{\"w\": 5}")), {"'w'", "expected an object"});
  expect_message(parse_error(header_only("{\"w\": {\"shape\": [], \"data_offsets\": [0, 0]}}")), {"'w'", "'dtype'"});
  expect_message(parse_error(header_only("{\"w\": {\"dtype\": \"F32\", \"shape\": 3, \"data_offsets\": [0, 4]}}", 4)),
                 {"'w'", "'shape'"});
  expect_message(parse_error(header_only("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4)),
                 {"'w'", "non-negative", "-1"});
  expect_message(parse_error(header_only("{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4)),
                 {"'w'", "non-negative integers"});
  expect_message(parse_error(header_only("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4)),
                 {"'w'", "data_offsets"});
  expect_message(parse_error(header_only("{\"__metadata__\": {\"a\": 1}}")), {"__metadata__", "'a'", "string"});
  expect_message(parse_error(header_only("{\"__metadata__\": [1]}")), {"__metadata__", "object"});
}

TEST(SafetensorsDamaged, UnknownDtype) {
  expect_message(parse_error(tw::safetensors_bytes({{"w", "F12", {1}, {0, 0}}})), {"'w'", "unknown dtype 'F12'"});
  expect_message(parse_error(tw::safetensors_bytes({{"w", "F4", {2}, {0}}})), {"'w'", "'F4'", "several elements per byte"});
}

TEST(SafetensorsDamaged, ShapeAndByteSizeMismatch) {
  expect_message(parse_error(tw::safetensors_bytes({{"w.weight", "BF16", {2, 3}, std::vector<uint8_t>(10)}})),
                 {"damaged.safetensors", "'w.weight'", "[2, 3]", "12 bytes", "span 10"});
  expect_message(
      parse_error(header_only(
          "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], \"data_offsets\": [0, 0]}}")),
      {"'w'", "64 bits"});
  expect_message(parse_error(header_only("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4)),
                 {"'w'", "end before they begin"});
}

TEST(SafetensorsDamaged, OverlappingRangesHolesAndTrailingBytes) {
  const std::string overlap =
      "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
      " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}";
  expect_message(parse_error(header_only(overlap, 12)), {"damaged.safetensors", "'b'", "overlaps", "'a'"});
  const std::string same =
      "{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
      " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}}";
  expect_message(parse_error(header_only(same, 4)), {"overlaps"});
  const std::string hole =
      "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
      " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}";
  expect_message(parse_error(header_only(hole, 12)), {"hole before 'b'", "[4, 8)"});
  expect_message(parse_error(tw::safetensors_file(tw::safetensors_header({{"a", "U8", {2}, {1, 2}}}), {1, 2, 3})),
                 {"trailing bytes"});
  const std::string past = "{\"a\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]}}";
  expect_message(parse_error(header_only(past, 4)), {"'a'", "past the data section of 4 bytes"});
}

}  // namespace
}  // namespace octet::safetensors
