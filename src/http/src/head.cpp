#include "head.h"

#include <array>
#include <cstring>

namespace sf::http {
namespace {

// RFC 9110 5.6.2 tchar.
constexpr std::array<bool, 256> make_tchar() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr auto kTchar = make_tchar();

bool tchar(char c) {
  return kTchar[static_cast<unsigned char>(c)];
}

// field-vchar / SP / HTAB (obs-text allowed); no CTLs, no DEL.
bool value_char(char ch) {
  auto c = static_cast<unsigned char>(ch);
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

HeadParse parse_simple_head(std::string_view in, SimpleHead& out) {
  // The whole head must be there: find the empty line first (memmem is fast on long buffers).
  const void* end = ::memmem(in.data(), in.size(), "\r\n\r\n", 4);
  if (!end) return HeadParse::incomplete;
  std::size_t head_size = static_cast<std::size_t>(static_cast<const char*>(end) - in.data()) + 4;
  std::string_view head = in.substr(0, head_size);

  // Request line: method SP origin-form SP HTTP/1.x CRLF.
  std::size_t i = 0;
  while (i < head.size() && tchar(head[i])) ++i;
  if (i == 0 || i > 16 || head[i] != ' ') return HeadParse::other;
  out.method = head.substr(0, i);
  std::size_t t0 = ++i;
  if (head[i] != '/') return HeadParse::other;
  while (i < head.size()) {
    auto c = static_cast<unsigned char>(head[i]);
    if (c <= 0x20 || c >= 0x7f) break;
    ++i;
  }
  if (head[i] != ' ') return HeadParse::other;
  out.target = head.substr(t0, i - t0);
  ++i;
  std::string_view version = head.substr(i, 10);
  if (version == "HTTP/1.1\r\n")
    out.version = 11;
  else if (version == "HTTP/1.0\r\n")
    out.version = 10;
  else
    return HeadParse::other;
  i += 10;

  // Fields: name ":" OWS value OWS CRLF, until the empty line.
  std::size_t fields_start = i;
  bool close = false, keep_alive = false;
  while (i + 2 <= head.size() && !(head[i] == '\r' && head[i + 1] == '\n')) {
    std::size_t n0 = i;
    while (i < head.size() && tchar(head[i])) ++i;
    if (i == n0 || head[i] != ':') return HeadParse::other;  // also obs-fold (a line starting with SP)
    std::string_view name = head.substr(n0, i - n0);
    std::size_t v0 = ++i;
    while (i < head.size() && head[i] != '\r') {
      if (!value_char(head[i])) return HeadParse::other;  // bare LF, NUL, other CTLs
      ++i;
    }
    if (i + 1 >= head.size() || head[i + 1] != '\n') return HeadParse::other;
    std::string_view value = trim(head.substr(v0, i - v0));
    i += 2;
    // Framing and connection management are the full parser's business when they are unusual.
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding") || iequals(name, "upgrade"))
      return HeadParse::other;
    if (iequals(name, "connection")) {
      while (!value.empty()) {
        auto comma = value.find(',');
        auto token = trim(value.substr(0, comma));
        if (iequals(token, "close"))
          close = true;
        else if (iequals(token, "keep-alive"))
          keep_alive = true;
        else if (iequals(token, "upgrade"))
          return HeadParse::other;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
      }
    }
  }
  if (i + 2 != head.size()) return HeadParse::other;
  out.fields = head.substr(fields_start, i - fields_start);
  out.keep_alive = out.version == 11 ? !close : (keep_alive && !close);
  out.size = head_size;
  return HeadParse::simple;
}

}  // namespace sf::http
