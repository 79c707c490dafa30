// Dequantization against gguf-py: tests/fixtures/gguf_dequant.gguf holds tensors of every supported
// type next to gguf-py's dequantization of them (tools/make_gguf_dequant_fixture.py). Results must
// match bit for bit (NaN only as NaN: numpy may quiet a signalling NaN's payload).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "common/error.h"
#include "formats/gguf.h"
#include "gguf_test_writer.h"

namespace octet::gguf {
namespace {

const std::string kFixture = std::string(OCTET_SOURCE_DIR) + "/tests/fixtures/gguf_dequant.gguf";

uint32_t bits_of(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits_of(a) == bits_of(b); }

TEST(GgufDequantize, MatchesGgufPyBitForBitForEverySupportedType) {
  const File file = File::open(kFixture);
  std::set<std::string> types_checked;
  const std::string suffix = ".expected";
  for (const TensorInfo& expected_info : file.tensors()) {
    const std::string& name = expected_info.name;
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const TensorInfo& quantized = file.tensor(name.substr(0, name.size() - suffix.size()));
    ASSERT_EQ(expected_info.type, TensorType::F32) << name;
    ASSERT_EQ(quantized.dims, expected_info.dims) << name;
    const std::vector<float> expected = file.dequantize(expected_info);
    const std::vector<float> actual = file.dequantize(quantized);
    ASSERT_EQ(actual.size(), expected.size()) << quantized.name;
    size_t mismatches = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
      if (same_float(actual[i], expected[i])) continue;
      if (++mismatches <= 5)
        ADD_FAILURE() << quantized.name << " element " << i << ": got " << actual[i] << " (0x" << std::hex
                      << bits_of(actual[i]) << "), gguf-py " << expected[i] << " (0x" << bits_of(expected[i]) << ")"
                      << std::dec;
    }
    EXPECT_EQ(mismatches, 0u) << quantized.name;
    types_checked.insert(type_name(quantized.type));
  }
  const std::set<std::string> all_supported = {"F32",  "F16",  "BF16", "Q4_0", "Q4_1", "Q5_0",
                                               "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
  EXPECT_EQ(types_checked, all_supported);
}

TEST(GgufDequantize, HalfPrecisionSpecialValues) {
  // Independent of the fixture: IEEE binary16 values whose float32 images are known exactly.
  const std::vector<std::pair<uint16_t, float>> cases = {
      {0x0000, 0.0f},          {0x3c00, 1.0f},         {0xc000, -2.0f},         {0x7bff, 65504.0f},
      {0x0001, 0x1p-24f},      {0x03ff, 1023 * 0x1p-24f}, {0x0400, 0x1p-14f},   {0x7c00, INFINITY},
      {0xfc00, -INFINITY},     {0x3555, 0x1.554p-2f},
  };
  for (const auto& [half, expected] : cases) {
    const uint8_t bytes[2] = {static_cast<uint8_t>(half), static_cast<uint8_t>(half >> 8)};
    float out = 0;
    dequantize_row(TensorType::F16, bytes, &out, 1);
    EXPECT_EQ(bits_of(out), bits_of(expected)) << "half 0x" << std::hex << half;
  }
  const uint8_t negative_zero[2] = {0x00, 0x80};
  float out = 0;
  dequantize_row(TensorType::F16, negative_zero, &out, 1);
  EXPECT_EQ(bits_of(out), 0x80000000u);
  const uint8_t nan[2] = {0x01, 0x7e};
  dequantize_row(TensorType::F16, nan, &out, 1);
  EXPECT_TRUE(std::isnan(out));
}

TEST(GgufDequantize, Q8_0BlockByHand) {
  // d = 0.5 (half 0x3800), then int8 quants -128..127 sampled.
  std::vector<uint8_t> block = {0x00, 0x38};
  for (int j = 0; j < 32; ++j) block.push_back(static_cast<uint8_t>(static_cast<int8_t>(j * 8 - 128)));
  std::vector<float> out(32);
  dequantize_row(TensorType::Q8_0, block.data(), out.data(), 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(out[j], 0.5f * static_cast<float>(j * 8 - 128)) << j;
}

TEST(GgufDequantize, SizesAndUnsupportedTypes) {
  EXPECT_EQ(block_size(TensorType::Q4_K), 256u);
  EXPECT_EQ(byte_size(TensorType::Q4_1, 64), 40u);
  EXPECT_EQ(byte_size(TensorType::Q6_K, 512), 420u);
  EXPECT_EQ(byte_size(TensorType::BF16, 3), 6u);
  EXPECT_THROW(byte_size(TensorType::Q4_0, 33), Error);
  EXPECT_THROW(byte_size(TensorType::F64, uint64_t{1} << 62), Error);  // 2^65 bytes
  EXPECT_THROW(block_size(static_cast<TensorType>(99)), Error);
  EXPECT_EQ(type_name(static_cast<TensorType>(99)), "type 99");
  EXPECT_EQ(type_name(TensorType::IQ4_XS), "IQ4_XS");
  EXPECT_TRUE(is_known_type(TensorType::Q2_K));
  EXPECT_FALSE(can_dequantize(TensorType::Q2_K));
  float out[256];
  const uint8_t block[84] = {};
  EXPECT_THROW(dequantize_row(TensorType::Q2_K, block, out, 256), Error);
}

TEST(GgufDequantize, UnsupportedTypeErrorNamesTensorAndType) {
  testing::GgufWriter writer;
  writer.add_tensor("blk.0.ffn_down.weight", {256, 1}, TensorType::Q3_K, std::vector<uint8_t>(110));
  const auto bytes = writer.build();
  const File file = File::parse(bytes, "model.gguf");
  try {
    file.dequantize(file.tensor("blk.0.ffn_down.weight"));
    FAIL() << "expected an error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("model.gguf"), std::string::npos) << message;
    EXPECT_NE(message.find("blk.0.ffn_down.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("Q3_K"), std::string::npos) << message;
  }
}

TEST(GgufDequantize, ForeignTensorInfoIsCheckedBeforeAllocating) {
  testing::GgufWriter writer;
  writer.add_f32_tensor("small", {4}, {1, 2, 3, 4});
  const auto bytes = writer.build();
  const File file = File::parse(bytes, "small.gguf");
  TensorInfo forged = file.tensor("small");
  forged.element_count = uint64_t{1} << 60;  // would be an 4 EiB allocation
  EXPECT_THROW(file.dequantize(forged), Error);
  forged = file.tensor("small");
  forged.byte_size = 1 << 20;  // past the end of the file
  EXPECT_THROW(file.tensor_bytes(forged), Error);
}

}  // namespace
}  // namespace octet::gguf
