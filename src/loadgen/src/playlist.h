// Just enough HLS for a simulated player: URLs, the multivariant playlist, LL-HLS media playlists
// (RFC 8216bis; SPECS §1), and the choices a player makes with them (where to start, what is new).
// Parsers borrow: a parsed playlist holds the Bytes it was parsed from, and every string_view in
// it points into those bytes, so copies of it share them. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/core/result.h"
#include "sf/net/io_pool.h"

namespace sf::loadgen {

constexpr double kNoTime = std::numeric_limits<double>::quiet_NaN();

struct HttpUrl {
  net::Endpoint endpoint;
  std::string target;  // "/path?query"
};
// "http://host[:port]/path?query" (no https, no userinfo).
Result<HttpUrl> parse_http_url(std::string_view url);

// Resolves a URI found in the playlist at `base_target` to a request target on the same server
// (RFC 3986 5.2 for paths; an absolute http URL must name `server`, else errc::unsupported).
Result<std::string> resolve_uri(std::string_view base_target, std::string_view ref, const net::Endpoint& server);

// "2025-03-01T20:00:00.000Z" (or with a ±hh:mm offset) as seconds since the Unix epoch.
std::optional<double> parse_program_date_time(std::string_view text);

struct Variant {
  std::string_view uri;
  std::uint64_t bandwidth = 0;
  std::string_view codecs;
  std::string_view resolution;
  std::string_view audio_group;
};
struct MediaRendition {
  std::string_view type;  // AUDIO, SUBTITLES, ...
  std::string_view group;
  std::string_view name;
  std::string_view uri;
  bool is_default = false;
};
struct MultivariantPlaylist {
  Bytes text;
  std::vector<Variant> variants;
  std::vector<MediaRendition> media;
};
Result<MultivariantPlaylist> parse_multivariant(Bytes text);
// The first variant with video (video codecs or a resolution), else the first one; null if none.
const Variant* first_video_variant(const MultivariantPlaylist& m);
// The audio rendition a player picks for `v`: DEFAULT=YES in its AUDIO group, else the first with
// a URI; null when the variant carries its audio itself.
const MediaRendition* audio_rendition(const MultivariantPlaylist& m, const Variant& v);

struct Part {
  std::uint64_t msn = 0;
  std::uint32_t index = 0;  // within its parent segment, from 0
  double duration = 0;
  double pdt = kNoTime;  // start, from the parent's PROGRAM-DATE-TIME plus the parts before it
  std::string_view uri;
  std::string_view map_uri;  // the EXT-X-MAP in force
  bool independent = false;
  bool gap = false;
};
struct Segment {
  std::uint64_t msn = 0;
  double duration = 0;
  double pdt = kNoTime;
  std::string_view uri;
  std::string_view map_uri;
  std::uint32_t part_count = 0;  // parts listed for it (0 once they left the playlist)
};
struct MediaPlaylist {
  Bytes text;
  double target_duration = 0;
  double part_target = 0;
  double part_hold_back = 0;
  double hold_back = 0;
  bool can_block_reload = false;
  double can_skip_until = 0;           // EXT-X-SERVER-CONTROL CAN-SKIP-UNTIL: delta updates offered (seconds)
  std::uint64_t skipped_segments = 0;  // EXT-X-SKIP in a delta update: segments left out
  bool endlist = false;
  std::uint64_t media_sequence = 0;
  std::vector<Segment> segments;  // complete segments, oldest first
  std::vector<Part> parts;        // every listed part, oldest first, the open segment's last
  std::uint64_t next_msn = 0;     // MSN of the segment after the last complete one (the open one)
  std::string_view preload_hint;  // URI of the hinted next part, if any

  // Whether segment `msn` is complete in this playlist (its EXTINF is listed).
  bool complete(std::uint64_t msn) const { return msn < next_msn; }
  // Seconds of media from the start of part `i` to the end of the last listed part.
  double media_after(std::size_t part) const;
};
Result<MediaPlaylist> parse_media_playlist(Bytes text);

// Where a low-latency player starts (SPECS §1.1 PART-HOLD-BACK, §1.6 "players join only at
// INDEPENDENT parts"): the newest INDEPENDENT part that begins at least PART-HOLD-BACK (3 part
// targets if absent) before the end of the last listed part; failing that, the oldest independent
// part; failing that, the part at the hold-back distance. nullopt without parts.
std::optional<std::size_t> ll_start_part(const MediaPlaylist& p);
// For a second rendition joining a player already positioned at media time `pdt`: the newest
// part (independent if any qualifies) beginning at or before `pdt`; the oldest part if all are later.
std::optional<std::size_t> part_at(const MediaPlaylist& p, double pdt);
// Index into p.parts of the first part listed after part (msn, index); p.parts.size() if none.
std::size_t parts_after(const MediaPlaylist& p, std::uint64_t msn, std::uint32_t index);
// Whether p.parts[i] comes right after part (msn, index): the next part of the same segment, or
// part 0 of the next segment when `msn` is complete in `p` with `index` its last part.
bool follows(const MediaPlaylist& p, std::size_t i, std::uint64_t msn, std::uint32_t index);
// The blocking reload query for the part after (msn, index) (SPECS §1.2): the next index of the same
// segment; the server rolls an index past the parent's last part over to (msn + 1, 0).
std::string blocking_query(std::uint64_t msn, std::uint32_t index);

// Where a regular (polling) player starts: `count` complete segments from the end (RFC 8216 6.3.3:
// not within three target durations of the end), or the first one.
std::optional<std::size_t> poll_start_segment(const MediaPlaylist& p, std::size_t count = 3);
// The newest complete segment beginning at or before `pdt`, or the oldest one.
std::optional<std::size_t> segment_at(const MediaPlaylist& p, double pdt);
// Index into p.segments of the first complete segment after `msn`; p.segments.size() if none.
std::size_t segments_after(const MediaPlaylist& p, std::uint64_t msn);

}  // namespace sf::loadgen
