// Renders a StreamView's playlists and MPD (once per published part; every request then reads
// the same strings). Input thread only, before the view is published.
#pragma once

#include "sf/origin/origin.h"
#include "window.h"

namespace sf::origin {

void render_view(StreamView& view, const Config& config, int target_duration);
// The DASH MPD over the same segments (mpd.cpp).
std::string render_mpd(const StreamView& view, const Config& config, int target_duration);

// Index of the first segment a playlist lists (older ones are kept only to stay downloadable).
std::size_t first_listed(const RenditionView& r, std::int64_t window_segments);

}  // namespace sf::origin
