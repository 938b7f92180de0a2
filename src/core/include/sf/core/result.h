// Error codes and Result<T>, the way network code reports what a peer caused.
// Thread-safe: everything here is stateless.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <expected>
#include <system_error>

namespace sf {

enum class errc {
  ok = 0,
  truncated,          // input ended before a complete element
  malformed,          // bytes that do not follow the format
  message_too_large,  // a declared length above the configured limit
  limit_exceeded,     // a count or size limit (connections, streams, pending messages)
  unsupported,        // valid but not handled (codec, protocol version, command)
  unauthorized,       // wrong, revoked or missing credential
  conflict,           // the resource is in use (stream already publishing)
  timeout,            // a peer did not answer in time
  closed,             // the peer went away
  not_found,
  invalid_argument,
  io_error,
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

template <class T>
using Result = std::expected<T, std::error_code>;

inline std::unexpected<std::error_code> fail(errc e) {
  return std::unexpected(make_error_code(e));
}

[[noreturn]] void check_failed(const char* expr, const char* file, int line) noexcept;

}  // namespace sf

template <>
struct std::is_error_code_enum<sf::errc> : std::true_type {};

// SF_CHECK: always on; aborts where continuing would corrupt state. SF_ASSERT: debug builds only.
#define SF_CHECK(cond) ((cond) ? void(0) : ::sf::check_failed(#cond, __FILE__, __LINE__))
#ifdef NDEBUG
#define SF_ASSERT(cond) ((void)0)
#else
#define SF_ASSERT(cond) SF_CHECK(cond)
#endif
