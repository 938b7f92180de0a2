#include "sf/auth/token_access.h"

#include <charconv>
#include <chrono>
#include <unordered_map>

namespace sf::auth {
namespace {

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Successful verdicts per thread: key checker\0token\0stream\0ip -> the token's expiry. Several
// checkers share a thread (the origin's and the edge's in `all`) without evicting each other.
// Bounded by clearing (a full cache means many distinct viewers per thread; the next requests
// re-verify once each).
constexpr std::size_t kMaxCachedVerdicts = 16384;

std::atomic<std::uint64_t> next_instance{1};

// The expiry field of a token that verified: "1.<kid>.<exp>.<ip>.<sig>".
std::int64_t token_expiry(std::string_view token) {
  auto a = token.find('.');
  auto b = a == std::string_view::npos ? a : token.find('.', a + 1);
  auto c = b == std::string_view::npos ? b : token.find('.', b + 1);
  if (c == std::string_view::npos) return 0;
  std::int64_t v = 0;
  std::from_chars(token.data() + b + 1, token.data() + c, v);
  return v;
}

void append_query(std::string& out, std::string_view uri, std::string_view token, std::string_view amp) {
  out += uri;
  if (uri.find('?') == std::string_view::npos) {
    out += '?';
  } else {
    out += amp;
  }
  out += kTokenParam;
  out += '=';
  out += token;
}

// Copies `line`, with the token appended to the value of every URI="..." attribute.
void rewrite_uri_attributes(std::string& out, std::string_view line, std::string_view token) {
  static constexpr std::string_view kUri = "URI=\"";
  while (true) {
    auto at = line.find(kUri);
    // The attribute name must start there (not the tail of another name such as "XURI").
    while (at != std::string_view::npos && at > 0 && line[at - 1] != ',' && line[at - 1] != ':')
      at = line.find(kUri, at + 1);
    if (at == std::string_view::npos) break;
    auto start = at + kUri.size();
    auto end = line.find('"', start);
    if (end == std::string_view::npos) break;
    out += line.substr(0, start);
    append_query(out, line.substr(start, end - start), token, "&");
    line.remove_prefix(end);
  }
  out += line;
}

}  // namespace

// Versions are drawn from one counter, so no two instances (or two states of one) share a version
// and a thread's cached snapshot can never be mistaken for another instance's.
std::atomic<std::uint64_t> next_version{1};

ProtectedStreams::ProtectedStreams() : names_(std::make_shared<const Set>()), version_(next_version++) {}

bool ProtectedStreams::contains(std::string_view stream) const {
  thread_local std::uint64_t seen = 0;
  thread_local std::shared_ptr<const Set> snapshot;
  auto v = version_.load(std::memory_order_acquire);
  if (v != seen) {
    snapshot = names_.load(std::memory_order_acquire);
    seen = v;
  }
  return !snapshot->empty() && snapshot->find(stream) != snapshot->end();
}

void ProtectedStreams::replace(std::set<std::string, std::less<>> names) {
  names_.store(std::make_shared<const Set>(std::move(names)), std::memory_order_release);
  version_.store(next_version++, std::memory_order_release);
}

TokenChecker::TokenChecker(std::vector<TokenKey> keys) : keys_(std::move(keys)), instance_(next_instance++) {}

AccessDecision TokenChecker::check(std::string_view token, std::string_view stream, std::string_view client_ip) const {
  if (token.empty()) return {403, "viewer token required"};
  if (token.size() > kMaxTokenLength) return {403, "token too long"};
  auto now = now_s();
  thread_local std::unordered_map<std::string, std::int64_t> cache;
  std::string key;
  key.reserve(sizeof instance_ + token.size() + stream.size() + client_ip.size() + 3);
  key.append(reinterpret_cast<const char*>(&instance_), sizeof instance_).append(1, '\0');
  key.append(token).append(1, '\0').append(stream).append(1, '\0').append(client_ip);
  if (auto it = cache.find(key); it != cache.end()) {
    if (now < it->second) return {};
    cache.erase(it);
  }
  std::string_view reason;
  if (auto ok = verify_token(keys_, token, stream, now, client_ip, &reason); !ok) return {403, reason};
  if (cache.size() >= kMaxCachedVerdicts) cache.clear();
  cache.emplace(std::move(key), token_expiry(token));
  return {};
}

std::string TokenChecker::upstream_token(std::string_view stream) const {
  if (keys_.empty()) return {};
  auto expires = now_s() / 30 * 30 + 90;
  return issue_token(keys_.front(), stream, expires);
}

std::string_view live_stream_of(std::string_view path) {
  if (!path.starts_with("/live/")) return {};
  path.remove_prefix(6);
  return path.substr(0, path.find('/'));
}

bool url_safe_token(std::string_view token) {
  if (token.empty() || token.size() > kMaxTokenLength) return false;
  for (char c : token) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string add_token_to_hls(std::string_view playlist, std::string_view token) {
  if (!url_safe_token(token)) return std::string(playlist);
  std::string out;
  out.reserve(playlist.size() + playlist.size() / 4 + 64);
  while (!playlist.empty()) {
    auto nl = playlist.find('\n');
    auto line = playlist.substr(0, nl);
    std::string_view eol = nl == std::string_view::npos ? "" : "\n";
    playlist.remove_prefix(nl == std::string_view::npos ? playlist.size() : nl + 1);
    if (line.ends_with('\r')) {
      line.remove_suffix(1);
      eol = nl == std::string_view::npos ? "\r" : "\r\n";
    }
    // RFC 8216 4.1: lines are URIs, blank, or start with '#' (tags and comments).
    if (line.empty()) {
    } else if (line.front() == '#') {
      if (line.starts_with("#EXT"))
        rewrite_uri_attributes(out, line, token);
      else
        out += line;
    } else {
      append_query(out, line, token, "&");
    }
    out += eol;
  }
  return out;
}

std::string add_token_to_dash(std::string_view mpd, std::string_view token) {
  if (!url_safe_token(token)) return std::string(mpd);
  std::string out;
  out.reserve(mpd.size() + 256);
  while (true) {
    std::size_t best = std::string_view::npos, name_len = 0;
    for (std::string_view attr : {"media=\"", "initialization=\"", "sourceURL=\""}) {
      for (auto at = mpd.find(attr); at != std::string_view::npos; at = mpd.find(attr, at + 1)) {
        if (at > 0 && (mpd[at - 1] == ' ' || mpd[at - 1] == '\t' || mpd[at - 1] == '\n' || mpd[at - 1] == '\r')) {
          if (at < best) {
            best = at;
            name_len = attr.size();
          }
          break;
        }
      }
    }
    if (best == std::string_view::npos) break;
    auto start = best + name_len;
    auto end = mpd.find('"', start);
    if (end == std::string_view::npos) break;
    out += mpd.substr(0, start);
    append_query(out, mpd.substr(start, end - start), token, "&amp;");
    mpd.remove_prefix(end);
  }
  out += mpd;
  return out;
}

}  // namespace sf::auth
