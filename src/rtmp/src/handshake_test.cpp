#include "sf/rtmp/handshake.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace sf::rtmp {
namespace {

// Keys spelled out again here (not shared with handshake.cpp) so a typo there cannot hide.
const std::string kFlashTail(
    "\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93"
    "\xB8\xE6\x36\xCF\xEB\x31\xAE",
    32);
const std::string kPlayerKey = std::string("Genuine Adobe Flash Player 001") + kFlashTail;
const std::string kServerKey = std::string("Genuine Adobe Flash Media Server 001") + kFlashTail;

using Block = std::vector<std::uint8_t>;

std::vector<std::uint8_t> hmac(std::string_view key, const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> out(32);
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data, size, out.data(), &len);
  return out;
}

std::size_t digest_pos(const std::uint8_t* block, std::size_t base) {
  return (block[base] + block[base + 1] + block[base + 2] + block[base + 3]) % 728 + base + 4;
}

// FFmpeg's ff_rtmp_calc_digest: HMAC over the 1536-byte block with the 32 bytes at `pos` left out.
std::vector<std::uint8_t> block_digest(const std::uint8_t* block, std::size_t pos, std::string_view key) {
  Block joined(block, block + pos);
  joined.insert(joined.end(), block + pos + 32, block + kHandshakeSize);
  return hmac(key, joined.data(), joined.size());
}

Block random_block(std::uint32_t seed) {
  std::mt19937 rng(seed);
  Block b(kHandshakeSize);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

// C0+C1 as FFmpeg's rtmp_handshake builds it: time, version 9.0.124.2, random bytes, then
// rtmp_handshake_imprint_with_digest (base 8; base 772 is its "encrypted" layout).
std::vector<std::byte> ffmpeg_c0c1(std::size_t base, Block* c1_out = nullptr) {
  Block c1 = random_block(42);
  std::memset(c1.data(), 0, 4);
  const std::uint8_t version[4] = {9, 0, 124, 2};
  std::memcpy(c1.data() + 4, version, 4);
  const std::size_t pos = digest_pos(c1.data(), base);
  const auto digest = block_digest(c1.data(), pos, std::string_view(kPlayerKey).substr(0, 30));
  std::memcpy(c1.data() + pos, digest.data(), 32);
  if (c1_out != nullptr) *c1_out = c1;
  std::vector<std::byte> c0c1(kC0C1Size);
  c0c1[0] = std::byte{3};
  std::memcpy(c0c1.data() + 1, c1.data(), kHandshakeSize);
  return c0c1;
}

const std::uint8_t* s1_of(const HandshakeReply& r) {
  return reinterpret_cast<const std::uint8_t*>(r.s0s1s2.data()) + 1;
}
const std::uint8_t* s2_of(const HandshakeReply& r) {
  return s1_of(r) + kHandshakeSize;
}

TEST(Handshake, PlainC1IsEchoedInS2) {
  Block c1 = random_block(7);
  std::memset(c1.data() + 4, 0, 4);
  std::vector<std::byte> c0c1(kC0C1Size);
  c0c1[0] = std::byte{3};
  std::memcpy(c0c1.data() + 1, c1.data(), kHandshakeSize);

  auto reply = answer_handshake(c0c1);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->mode, HandshakeMode::plain);
  EXPECT_EQ(reply->s0s1s2[0], std::byte{3});
  EXPECT_EQ(std::memcmp(s2_of(*reply), c1.data(), kHandshakeSize), 0);
  EXPECT_EQ(std::memcmp(s1_of(*reply) + 4, "\0\0\0\0", 4), 0);
}

TEST(Handshake, VersionWithoutValidDigestFallsBackToPlain) {
  Block c1 = random_block(9);
  c1[4] = 9;
  std::vector<std::byte> c0c1(kC0C1Size);
  c0c1[0] = std::byte{3};
  std::memcpy(c0c1.data() + 1, c1.data(), kHandshakeSize);

  auto reply = answer_handshake(c0c1);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->mode, HandshakeMode::plain);
  EXPECT_EQ(std::memcmp(s2_of(*reply), c1.data(), kHandshakeSize), 0);
}

class DigestHandshake : public testing::TestWithParam<std::size_t> {};

TEST_P(DigestHandshake, ServerDigestUsesClientSchemeAndVerifies) {
  const std::size_t base = GetParam();
  auto reply = answer_handshake(ffmpeg_c0c1(base));
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->mode, HandshakeMode::digest);

  const std::uint8_t* s1 = s1_of(*reply);
  EXPECT_NE(std::memcmp(s1 + 4, "\0\0\0\0", 4), 0);
  const std::size_t pos = digest_pos(s1, base);
  const auto expected = block_digest(s1, pos, std::string_view(kServerKey).substr(0, 36));
  EXPECT_EQ(std::memcmp(s1 + pos, expected.data(), 32), 0);
}

TEST_P(DigestHandshake, S2SignatureIsKeyedByClientDigest) {
  const std::size_t base = GetParam();
  Block c1;
  auto reply = answer_handshake(ffmpeg_c0c1(base, &c1));
  ASSERT_TRUE(reply.has_value());

  const std::size_t client_pos = digest_pos(c1.data(), base);
  const auto key = hmac(kServerKey, c1.data() + client_pos, 32);
  const auto signature =
      hmac(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), s2_of(*reply), kHandshakeSize - 32);
  EXPECT_EQ(std::memcmp(s2_of(*reply) + kHandshakeSize - 32, signature.data(), 32), 0);
}

INSTANTIATE_TEST_SUITE_P(Bases, DigestHandshake, testing::Values(std::size_t{8}, std::size_t{772}));

TEST(Handshake, RejectsRtmpeVersion) {
  auto c0c1 = ffmpeg_c0c1(8);
  c0c1[0] = std::byte{6};
  EXPECT_EQ(answer_handshake(c0c1).error(), errc::unsupported);
}

TEST(Handshake, RejectsUnknownVersion) {
  auto c0c1 = ffmpeg_c0c1(8);
  c0c1[0] = std::byte{0x47};  // 'G': someone speaking HTTP to the RTMP port
  EXPECT_EQ(answer_handshake(c0c1).error(), errc::unsupported);
}

TEST(Handshake, RejectsInputOfWrongSize) {
  auto c0c1 = ffmpeg_c0c1(8);
  c0c1.pop_back();
  EXPECT_EQ(answer_handshake(c0c1).error(), errc::invalid_argument);
}

}  // namespace
}  // namespace sf::rtmp
