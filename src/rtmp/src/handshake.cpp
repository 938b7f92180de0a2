#include "sf/rtmp/handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace sf::rtmp {
namespace {

constexpr std::uint8_t kRtmpVersion = 3;
constexpr std::size_t kDigestSize = 32;  // SHA-256
constexpr std::size_t kSignedSize = kHandshakeSize - kDigestSize;
// nginx-rtmp announces FMS 13.14.10.13; any non-zero value tells the client we speak digest.
constexpr std::uint8_t kServerVersion[4] = {0x0D, 0x0E, 0x0A, 0x0D};

// The de-facto Flash keys (SPECS 3.1): a readable prefix and a shared 32-byte constant. The client
// signs C1 with the first 30 bytes of its key, the server signs S1 with the first 36 of its own.
constexpr std::uint8_t kKeyTail[32] = {0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0,
                                       0xD1, 0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80,
                                       0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE};
constexpr std::string_view kClientKeyText = "Genuine Adobe Flash Player 001";
constexpr std::string_view kServerKeyText = "Genuine Adobe Flash Media Server 001";

struct Key {
  std::uint8_t bytes[68];
  std::size_t size;
};

constexpr Key make_key(std::string_view text) {
  Key k{};
  for (std::size_t i = 0; i < text.size(); ++i) k.bytes[i] = static_cast<std::uint8_t>(text[i]);
  for (std::size_t i = 0; i < sizeof(kKeyTail); ++i) k.bytes[text.size() + i] = kKeyTail[i];
  k.size = text.size() + sizeof(kKeyTail);
  return k;
}

constexpr Key kClientKey = make_key(kClientKeyText);
constexpr Key kServerKey = make_key(kServerKeyText);
constexpr std::size_t kClientKeyOpenPart = 30;
constexpr std::size_t kServerKeyOpenPart = 36;
static_assert(kServerKey.size == 68);

using Digest = std::array<std::uint8_t, kDigestSize>;

Digest hmac_sha256(const std::uint8_t* key, std::size_t key_size, const std::uint8_t* data, std::size_t size) {
  Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key, static_cast<int>(key_size), data, size, out.data(), &len);
  return out;
}

// Digest offset for a scheme base (772 or 8): the four bytes at `base` pick a spot in a 728-byte
// window that starts right after them.
std::size_t digest_offset(const std::uint8_t* block, std::size_t base) {
  const unsigned sum = block[base] + block[base + 1] + block[base + 2] + block[base + 3];
  return sum % 728 + base + 4;
}

// HMAC over the 1536-byte block without the 32 digest bytes at `offset`.
Digest block_digest(const std::uint8_t* block, std::size_t offset, const std::uint8_t* key, std::size_t key_size) {
  std::uint8_t joined[kSignedSize];
  std::memcpy(joined, block, offset);
  std::memcpy(joined + offset, block + offset + kDigestSize, kHandshakeSize - offset - kDigestSize);
  return hmac_sha256(key, key_size, joined, sizeof(joined));
}

struct ClientDigest {
  std::size_t base;
  Digest digest;
};

std::optional<ClientDigest> find_client_digest(const std::uint8_t* c1) {
  for (std::size_t base : {std::size_t{772}, std::size_t{8}}) {
    const std::size_t offset = digest_offset(c1, base);
    const Digest expected = block_digest(c1, offset, kClientKey.bytes, kClientKeyOpenPart);
    if (CRYPTO_memcmp(expected.data(), c1 + offset, kDigestSize) == 0) {
      ClientDigest found{base, {}};
      std::memcpy(found.digest.data(), c1 + offset, kDigestSize);
      return found;
    }
  }
  return std::nullopt;
}

bool fill_random(std::uint8_t* p, std::size_t n) {
  return RAND_bytes(p, static_cast<int>(n)) == 1;
}

}  // namespace

Result<HandshakeReply> answer_handshake(ByteView c0c1) {
  if (c0c1.size() != kC0C1Size) return fail(errc::invalid_argument);
  // RTMP 5.2.2: 3 is plain RTMP; 6 (RTMPE) and anything else are refused.
  if (std::to_integer<std::uint8_t>(c0c1[0]) != kRtmpVersion) return fail(errc::unsupported);

  const auto* c1 = reinterpret_cast<const std::uint8_t*>(c0c1.data()) + 1;
  HandshakeReply reply;
  auto* s0 = reinterpret_cast<std::uint8_t*>(reply.s0s1s2.data());
  std::uint8_t* s1 = s0 + 1;
  std::uint8_t* s2 = s1 + kHandshakeSize;
  s0[0] = kRtmpVersion;

  // S1 = time (0: our epoch) | version or zero | random.
  std::memset(s1, 0, 8);
  if (!fill_random(s1 + 8, kHandshakeSize - 8)) return fail(errc::io_error);

  const bool client_has_version = (c1[4] | c1[5] | c1[6] | c1[7]) != 0;
  const std::optional<ClientDigest> client = client_has_version ? find_client_digest(c1) : std::nullopt;
  if (!client) {
    // Simple handshake: S2 echoes C1.
    std::memcpy(s2, c1, kHandshakeSize);
    return reply;
  }

  std::memcpy(s1 + 4, kServerVersion, sizeof(kServerVersion));
  const std::size_t s1_offset = digest_offset(s1, client->base);
  const Digest s1_digest = block_digest(s1, s1_offset, kServerKey.bytes, kServerKeyOpenPart);
  std::memcpy(s1 + s1_offset, s1_digest.data(), kDigestSize);

  if (!fill_random(s2, kSignedSize)) return fail(errc::io_error);
  const Digest key = hmac_sha256(kServerKey.bytes, kServerKey.size, client->digest.data(), kDigestSize);
  const Digest signature = hmac_sha256(key.data(), key.size(), s2, kSignedSize);
  std::memcpy(s2 + kSignedSize, signature.data(), kDigestSize);
  reply.mode = HandshakeMode::digest;
  return reply;
}

}  // namespace sf::rtmp
