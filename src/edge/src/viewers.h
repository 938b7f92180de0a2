// Current viewers per stream, counted from the requests an edge serves: a viewer is a distinct
// (stream, token) — or, without a token, (stream, client address, User-Agent) — seen within the
// last kViewerWindow. Requests from other edges (with a Via header) are not viewers. Bounded: at
// most kMaxViewerKeys viewers are tracked; beyond that new ones are counted as `overflow`.
// Thread-safe; seen() is called on I/O threads for every served /live/ request, so a thread that
// sees the same viewer again within a second returns without taking the lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sf::edge {

constexpr std::chrono::milliseconds kViewerWindow{10000};
constexpr std::size_t kMaxViewerKeys = 200000;

class ViewerCount {
 public:
  // `now_ms` on a steady clock. `stream` empty: ignored.
  void seen(std::string_view stream, std::string_view token, std::string_view remote, std::string_view user_agent,
            std::int64_t now_ms);
  // Viewers per stream seen within the window before `now_ms` (streams with none are left out).
  std::map<std::string, std::int64_t> counts(std::int64_t now_ms);
  std::uint64_t overflow() const;

 private:
  void prune(std::int64_t now_ms);  // with mu_ held

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::int64_t> last_seen_;  // "stream\n viewer" -> ms
  std::int64_t last_prune_ms_ = 0;
  std::uint64_t overflow_ = 0;
};

}  // namespace sf::edge
