// The server's fast path for request heads: a strict recogniser of the common case (a request
// line in origin form, HTTP/1.0 or 1.1, CRLF-terminated fields of plain tokens and values, no
// body). It parses in place, without allocating. Anything outside that case (a body, a
// Transfer-Encoding or Content-Length, folded lines, bare LF, odd characters, absolute-form
// targets) is `other`: the server then hands the same bytes to Beast's full parser, which accepts
// or refuses them as before. So the fast path only ever accepts a subset of what Beast accepts,
// and reads it the same way.
#pragma once

#include <cstddef>
#include <string_view>

namespace sf::http {

struct SimpleHead {
  std::string_view method;
  std::string_view target;  // origin form: starts with '/'
  std::string_view fields;  // the field lines, each "Name: value\r\n" as received
  unsigned version = 11;    // 10 or 11
  bool keep_alive = true;   // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "keep-alive"
  std::size_t size = 0;     // bytes of the head, up to and including the empty line
};

enum class HeadParse { simple, incomplete, other };

// `in` holds the bytes received so far. `simple`: `out` describes the head at the start of `in`.
// `incomplete`: no empty line yet (the caller reads more, up to its header limit). `other`: let
// the full parser decide.
HeadParse parse_simple_head(std::string_view in, SimpleHead& out);

}  // namespace sf::http
