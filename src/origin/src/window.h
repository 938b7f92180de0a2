// The immutable view of a live stream that HTTP requests read: renditions with their window of
// segments and parts, and the playlists and MPD rendered for that moment. A new StreamSnapshot is
// built for each published part and swapped in atomically; readers keep theirs alive by
// shared_ptr and never lock. Everything here is immutable once published.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sf/cmaf/fmp4.h"
#include "sf/media/frame.h"

namespace sf::origin {

struct Part {
  std::uint32_t index = 0;
  double duration = 0;
  bool independent = false;
  cmaf::Chunk chunk;  // header + the frames' own buffers
};

struct Segment {
  std::uint64_t msn = 0;
  std::vector<std::shared_ptr<const Part>> parts;
  bool complete = false;
  double duration = 0;         // sum of parts so far
  std::int64_t start_dts = 0;  // in the track timescale
  std::int64_t pdt_ms = 0;     // wall clock of the first sample
  bool discontinuity = false;  // first segment after a restart or a codec change
  std::uint32_t init_version = 1;
  std::uint64_t discontinuity_sequence = 0;  // discontinuities before this segment
  std::int64_t period_start_ms = 0;          // wall clock where this discontinuity group (DASH period) begins
  // DASH: how much earlier than its program date time the Period presents its media (the short
  // gap before it, closed on the MPD's timeline; see Packager::begin_period). 0: as the PDT says.
  std::int64_t period_lead_ms = 0;
  std::size_t bytes = 0;
};

struct RenditionView {
  std::string name;  // "video", "audio", or a transcoder's rung name ("720p"): the path component
  media::TrackConfig track;
  std::shared_ptr<const std::map<std::uint32_t, Bytes>> inits;  // init segment per version
  // The track's configuration per init version: an old DASH Period keeps describing the codec and
  // size its segments have after a new configuration started the next one.
  std::shared_ptr<const std::map<std::uint32_t, media::TrackConfig>> configs;
  const media::TrackConfig& config(std::uint32_t init_version) const;
  std::vector<std::shared_ptr<const Segment>> segments;  // oldest first; last may be open
  std::uint64_t discontinuity_sequence = 0;              // of the first listed segment
  double frame_rate = 0;
  std::uint64_t peak_bps = 0;
  std::uint64_t average_bps = 0;
  std::uint64_t declared_bps = 0;  // from the track (a transcoder's VBV peak); 0: not declared
  // False once a video rendition stopped getting frames while the leader goes on (a transcoder
  // dropped the rung, or a source shrank below it): it leaves the multivariant playlist and MPD.
  bool active = true;
  std::uint64_t bandwidth() const { return std::max(peak_bps, declared_bps); }

  Bytes playlist;       // full media playlist, rendered once per view and shared by every response
  Bytes playlist_skip;  // delta update (_HLS_skip=YES)

  // Last listed (msn, part index) — the live edge; nullopt before the first part.
  std::optional<std::pair<std::uint64_t, std::uint32_t>> last_part() const;
  const Segment* find(std::uint64_t msn) const;
};

struct StreamView {
  std::uint64_t version = 0;
  std::int64_t availability_start_ms = 0;  // DASH availabilityStartTime: fixed for the stream
  double part_target = 0;                  // seconds, PART-TARGET as advertised
  std::vector<std::shared_ptr<const RenditionView>> renditions;
  Bytes multivariant;
  Bytes mpd;
  bool live = true;  // a publisher is connected
  // When the packager made this view: new media, or the publisher coming or going.
  std::chrono::steady_clock::time_point made = std::chrono::steady_clock::now();
  // The stream's settings when this view was made (they change only at a publish).
  bool low_latency = true;              // false: standard HLS, no blocking reloads
  int target_duration = 2;              // seconds, EXT-X-TARGETDURATION
  double configured_part_target = 0.5;  // seconds, the part grid (part_target above adds a frame)
  double segment_target = 2;            // seconds

  const RenditionView* rendition(std::string_view name) const;
  // Live, and media came within the last three part targets (a second at least; standard HLS: one
  // and a half target durations): a publisher that is connected but sends nothing (stalled) is not
  // flowing.
  bool flowing(std::chrono::steady_clock::time_point now) const;
};

}  // namespace sf::origin
