#include "window.h"

namespace sf::origin {

std::optional<std::pair<std::uint64_t, std::uint32_t>> RenditionView::last_part() const {
  for (auto it = segments.rbegin(); it != segments.rend(); ++it)
    if (!(*it)->parts.empty()) return std::pair{(*it)->msn, static_cast<std::uint32_t>((*it)->parts.size() - 1)};
  return std::nullopt;
}

const Segment* RenditionView::find(std::uint64_t msn) const {
  // Segments are in msn order; the window is a handful of entries.
  for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
    if ((*it)->msn == msn) return it->get();
    if ((*it)->msn < msn) break;
  }
  return nullptr;
}

const media::TrackConfig& RenditionView::config(std::uint32_t init_version) const {
  if (configs)
    if (auto it = configs->find(init_version); it != configs->end()) return it->second;
  return track;
}

const RenditionView* StreamView::rendition(std::string_view name) const {
  for (auto& r : renditions)
    if (r->name == name) return r.get();
  return nullptr;
}

bool StreamView::flowing(std::chrono::steady_clock::time_point now) const {
  // Views come with every part (every part target, low-latency or not): three part targets (a
  // second at least) without one is a stall where players block on parts; standard HLS players
  // hold three target durations, and one and a half is ample.
  double quiet = low_latency ? std::max(3 * configured_part_target, 1.0) : 1.5 * target_duration;
  return live && now - made < std::chrono::duration<double>(quiet);
}

}  // namespace sf::origin
