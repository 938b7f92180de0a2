// LL-HLS playlist rendering (draft-pantos-hls-rfc8216bis; SPECS §1, §2): media playlists with
// parts, preload hints, rendition reports and delta updates, and multivariant playlists.
// Pure functions over plain values: any thread; the result is a fresh string the caller owns.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace sf::hls {

// A media playlist an origin answers while the stream's source (its publisher or pusher) is away,
// or connected but silent for three part targets (the origin's StreamView::flowing), carries
// `X-SF-Source: away`: it will not grow there until the source is back. Players ignore it; an
// edge with another upstream for the stream asks that one instead.
inline constexpr std::string_view kSourceHeader = "X-SF-Source";
inline constexpr std::string_view kSourceAway = "away";

struct Part {
  double duration = 0;       // seconds
  bool independent = false;  // starts with an IDR: INDEPENDENT=YES
  std::string uri;
};

struct Segment {
  std::uint64_t msn = 0;
  double duration = 0;  // seconds; used once complete
  std::string uri;
  std::vector<Part> parts;
  std::int64_t program_date_time_ms = 0;  // wall clock of the first sample, ms since the Unix epoch
  bool discontinuity = false;             // EXT-X-DISCONTINUITY before this segment
  std::string map_uri;                    // init section; EXT-X-MAP is written where it changes
  bool complete = true;                   // false: only parts so far (last segment only)
};

struct RenditionReport {
  std::string uri;  // relative to this playlist
  std::uint64_t last_msn = 0;
  std::int64_t last_part = 0;
};

struct MediaPlaylist {
  int target_duration = 0;           // seconds
  double part_target = 0;            // seconds; 0: no parts, no PART-INF
  std::uint64_t media_sequence = 0;  // msn of segments.front()
  std::uint64_t discontinuity_sequence = 0;
  std::vector<Segment> segments;  // oldest first; the last one may be incomplete
  std::string preload_hint_uri;   // next part; "" for none
  std::vector<RenditionReport> reports;
  double part_hold_back = 0;     // seconds; 0: omitted
  double hold_back = 0;          // seconds; 0: omitted
  double can_skip_until = 0;     // seconds; 0: no delta updates
  bool can_block_reload = true;  // CAN-BLOCK-RELOAD=YES (LL-HLS); false for standard HLS
  bool ended = false;            // EXT-X-ENDLIST
};

struct RenderOptions {
  bool skip = false;  // _HLS_skip=YES: a delta update, if the playlist offers them and is live
  std::string query;  // appended to every URI (e.g. "token=..."), without '?'
  // EXT-X-PART tags are listed for segments that end within this many seconds of the playlist's
  // end (the spec keeps them for 3·TD); the incomplete last segment's parts are always listed.
  double part_window_seconds = std::numeric_limits<double>::infinity();
};

std::string render_media_playlist(const MediaPlaylist& playlist, const RenderOptions& options);

struct Variant {
  std::uint64_t bandwidth = 0;          // peak, bits/s, video + audio
  std::uint64_t average_bandwidth = 0;  // 0: omitted
  std::string codecs;                   // every format in the variant: "avc1.64001f,mp4a.40.2"
  int width = 0;                        // 0: no RESOLUTION (audio-only)
  int height = 0;
  double frame_rate = 0;  // 0: omitted
  std::string uri;
  std::string audio_group;  // GROUP-ID of its AudioRenditions; "" for none
};

struct AudioRendition {
  std::string group_id;
  std::string name;
  std::string language;  // BCP 47; "" omits LANGUAGE
  std::string uri;
  bool is_default = false;
};

// `query` as in RenderOptions::query.
std::string render_multivariant(const std::vector<Variant>& variants, const std::vector<AudioRendition>& audio,
                                const std::string& query);

}  // namespace sf::hls
