#include "sf/hls/playlist.h"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <string_view>

#include "sf/core/result.h"

namespace sf::hls {
namespace {

// Durations are sums of tick counts divided by a timescale; compare with a tolerance well below
// anything a playlist can express (5 decimals).
constexpr double kEpsilon = 1e-6;

// §8: EXT-X-MAP outside I-frame playlists needs 6; EXT-X-SKIP needs 9.
constexpr int kVersion = 6;
constexpr int kVersionWithSkip = 9;

void append_fixed(std::string& out, double v, int decimals) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
  out.append(buf, ec == std::errc{} ? end : buf);
}

// Shortest form that reads back exactly: 0.5, 1.5, 6.
void append_number(std::string& out, double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc{} ? end : buf);
}

void append_uint(std::string& out, std::uint64_t v) {
  out += std::to_string(v);
}

// ISO 8601 with milliseconds and Z, as PROGRAM-DATE-TIME wants (§4.4.4.6).
void append_date_time(std::string& out, std::int64_t ms_since_epoch) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds{ms_since_epoch}};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  out += buf;
}

void append_uri(std::string& out, std::string_view uri, std::string_view query) {
  out += uri;
  if (!query.empty()) {
    out += uri.find('?') == std::string_view::npos ? '?' : '&';
    out += query;
  }
}

void append_quoted_uri(std::string& out, std::string_view uri, std::string_view query) {
  out += '"';
  append_uri(out, uri, query);
  out += '"';
}

double segment_duration(const Segment& s) {
  if (s.complete) return s.duration;
  double d = 0;
  for (const Part& p : s.parts) d += p.duration;
  return d;
}

// §6.2.5.1: a delta update replaces the oldest segments, up to the skip boundary that lies
// CAN-SKIP-UNTIL seconds before the end of the playlist. Only segments that end at or before the
// boundary are skipped.
std::size_t skippable_segments(const MediaPlaylist& p, double total) {
  std::size_t n = 0;
  double end = 0;
  for (const Segment& s : p.segments) {
    if (!s.complete) break;
    end += s.duration;
    if (total - end < p.can_skip_until - kEpsilon) break;
    ++n;
  }
  return n;
}

void append_parts(std::string& out, const Segment& s, std::string_view query) {
  for (const Part& part : s.parts) {
    out += "#EXT-X-PART:DURATION=";
    append_fixed(out, part.duration, 5);
    out += ",URI=";
    append_quoted_uri(out, part.uri, query);
    if (part.independent) out += ",INDEPENDENT=YES";
    out += '\n';
  }
}

}  // namespace

std::string render_media_playlist(const MediaPlaylist& p, const RenderOptions& options) {
  double total = 0;
  for (const Segment& s : p.segments) total += segment_duration(s);
  // §6.2.5.1: _HLS_skip is honoured only when CAN-SKIP-UNTIL is advertised and the list is live.
  const bool delta = options.skip && p.can_skip_until > 0 && !p.ended;
  const std::size_t skipped = delta ? skippable_segments(p, total) : 0;
  const std::string_view query = options.query;

  std::string out;
  out.reserve(256 + p.segments.size() * 96);
  out += "#EXTM3U\n#EXT-X-VERSION:";
  out += std::to_string(skipped > 0 ? kVersionWithSkip : kVersion);
  out += "\n#EXT-X-TARGETDURATION:";
  out += std::to_string(p.target_duration);
  out += '\n';
  if (p.part_target > 0) {
    out += "#EXT-X-PART-INF:PART-TARGET=";
    append_number(out, p.part_target);
    out += '\n';
  }
  std::string control;
  if (p.can_block_reload) control += ",CAN-BLOCK-RELOAD=YES";
  if (p.can_skip_until > 0) {
    control += ",CAN-SKIP-UNTIL=";
    append_number(control, p.can_skip_until);
  }
  if (p.part_hold_back > 0) {
    control += ",PART-HOLD-BACK=";
    append_number(control, p.part_hold_back);
  }
  if (p.hold_back > 0) {
    control += ",HOLD-BACK=";
    append_number(control, p.hold_back);
  }
  if (!control.empty()) {
    out += "#EXT-X-SERVER-CONTROL:";
    out.append(control, 1);
    out += '\n';
  }
  out += "#EXT-X-MEDIA-SEQUENCE:";
  append_uint(out, p.media_sequence);
  out += '\n';
  if (p.discontinuity_sequence > 0) {
    out += "#EXT-X-DISCONTINUITY-SEQUENCE:";
    append_uint(out, p.discontinuity_sequence);
    out += '\n';
  }
  if (skipped > 0) {
    out += "#EXT-X-SKIP:SKIPPED-SEGMENTS=";
    append_uint(out, skipped);
    out += '\n';
  }

  double start = 0;
  for (std::size_t i = 0; i < skipped; ++i) start += p.segments[i].duration;
  const std::string* map = nullptr;
  for (std::size_t i = skipped; i < p.segments.size(); ++i) {
    const Segment& s = p.segments[i];
    SF_ASSERT(s.msn == p.media_sequence + i);
    const double end = start + segment_duration(s);
    if (s.discontinuity) out += "#EXT-X-DISCONTINUITY\n";
    // The first listed segment repeats the map so a delta update stands on its own.
    if (!s.map_uri.empty() && (map == nullptr || *map != s.map_uri || s.discontinuity)) {
      out += "#EXT-X-MAP:URI=";
      append_quoted_uri(out, s.map_uri, query);
      out += '\n';
    }
    map = &s.map_uri;
    out += "#EXT-X-PROGRAM-DATE-TIME:";
    append_date_time(out, s.program_date_time_ms);
    out += '\n';
    if (!s.complete || total - end < options.part_window_seconds - kEpsilon) append_parts(out, s, query);
    if (s.complete) {
      out += "#EXTINF:";
      append_fixed(out, s.duration, 5);
      out += ",\n";
      append_uri(out, s.uri, query);
      out += '\n';
    }
    start = end;
  }

  // §4.4.5.3: no preload hint once the playlist has ended.
  if (!p.ended && !p.preload_hint_uri.empty()) {
    out += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=";
    append_quoted_uri(out, p.preload_hint_uri, query);
    out += '\n';
  }
  for (const RenditionReport& r : p.reports) {
    out += "#EXT-X-RENDITION-REPORT:URI=";
    append_quoted_uri(out, r.uri, query);
    out += ",LAST-MSN=";
    append_uint(out, r.last_msn);
    out += ",LAST-PART=";
    out += std::to_string(r.last_part);
    out += '\n';
  }
  if (p.ended) out += "#EXT-X-ENDLIST\n";
  return out;
}

std::string render_multivariant(const std::vector<Variant>& variants, const std::vector<AudioRendition>& audio,
                                const std::string& query) {
  std::string out = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n";
  for (const AudioRendition& a : audio) {
    out += "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"";
    out += a.group_id;
    out += "\",NAME=\"";
    out += a.name;
    out += '"';
    if (!a.language.empty()) {
      out += ",LANGUAGE=\"";
      out += a.language;
      out += '"';
    }
    out += a.is_default ? ",DEFAULT=YES" : ",DEFAULT=NO";
    out += ",AUTOSELECT=YES";
    if (!a.uri.empty()) {
      out += ",URI=";
      append_quoted_uri(out, a.uri, query);
    }
    out += '\n';
  }
  for (const Variant& v : variants) {
    out += "#EXT-X-STREAM-INF:BANDWIDTH=";
    append_uint(out, v.bandwidth);
    if (v.average_bandwidth > 0) {
      out += ",AVERAGE-BANDWIDTH=";
      append_uint(out, v.average_bandwidth);
    }
    out += ",CODECS=\"";
    out += v.codecs;
    out += '"';
    if (v.width > 0 && v.height > 0) {
      out += ",RESOLUTION=";
      out += std::to_string(v.width);
      out += 'x';
      out += std::to_string(v.height);
    }
    if (v.frame_rate > 0) {
      out += ",FRAME-RATE=";
      append_fixed(out, v.frame_rate, 3);
    }
    if (!v.audio_group.empty()) {
      out += ",AUDIO=\"";
      out += v.audio_group;
      out += '"';
    }
    out += '\n';
    append_uri(out, v.uri, query);
    out += '\n';
  }
  return out;
}

}  // namespace sf::hls
