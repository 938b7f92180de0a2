// RTMP handshake, server side (RTMP 1.0 5.2), plain and the Flash-era digest scheme.
// Pure functions over borrowed bytes; any thread.
#pragma once

#include <array>
#include <cstddef>

#include "sf/core/bytes.h"
#include "sf/core/result.h"

namespace sf::rtmp {

constexpr std::size_t kHandshakeSize = 1536;           // C1, S1, C2, S2
constexpr std::size_t kC0C1Size = 1 + kHandshakeSize;  // what the server waits for first
constexpr std::size_t kS0S1S2Size = 1 + 2 * kHandshakeSize;

enum class HandshakeMode { plain, digest };

struct HandshakeReply {
  std::array<std::byte, kS0S1S2Size> s0s1s2;
  HandshakeMode mode = HandshakeMode::plain;
};

// Builds S0+S1+S2 for a client's C0+C1 (exactly kC0C1Size bytes).
// errc::unsupported for a version other than 3 (RTMPE is 6); the caller closes the connection.
// A C1 whose bytes 4-7 are non-zero is checked for a client digest (base 772, then 8); when one
// validates, S1 carries the server digest and S2 the key-derived signature, else plain mode.
Result<HandshakeReply> answer_handshake(ByteView c0c1);

}  // namespace sf::rtmp
