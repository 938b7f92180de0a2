#include "playlist.h"

#include <charconv>
#include <cmath>

namespace sf::loadgen {

namespace {

bool parse_u64(std::string_view s, std::uint64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

bool parse_double(std::string_view s, double& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && !s.empty() && std::isfinite(out) && out >= 0;
}

// Calls f(name, value) for each attribute of an attribute list (RFC 8216 4.2); quoted values
// come without their quotes and may hold commas.
template <class F>
void for_each_attr(std::string_view list, F&& f) {
  while (!list.empty()) {
    auto eq = list.find('=');
    if (eq == std::string_view::npos) return;
    auto name = list.substr(0, eq);
    list.remove_prefix(eq + 1);
    std::string_view value;
    if (!list.empty() && list.front() == '"') {
      auto close = list.find('"', 1);
      if (close == std::string_view::npos) return;
      value = list.substr(1, close - 1);
      list.remove_prefix(close + 1);
      auto comma = list.find(',');
      list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    } else {
      auto comma = list.find(',');
      value = list.substr(0, comma);
      list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    }
    f(name, value);
  }
}

// Lines of a playlist without their line ends; blank lines skipped.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (!line.empty()) f(line);
  }
}

bool tag(std::string_view line, std::string_view name, std::string_view& value) {
  if (!line.starts_with(name)) return false;
  value = line.substr(name.size());
  return true;
}

// Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t at, std::size_t n, unsigned& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return true;
}

// Removes "." and ".." segments from an absolute path (RFC 3986 5.2.4).
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> out;
  bool trailing_slash = path.ends_with('/');
  while (!path.empty()) {
    auto slash = path.find('/');
    auto seg = path.substr(0, slash);
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash + 1);
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.push_back(seg);
  }
  std::string s;
  for (auto seg : out) s.append("/").append(seg);
  if (s.empty() || trailing_slash) s.append("/");
  return s;
}

}  // namespace

Result<HttpUrl> parse_http_url(std::string_view url) {
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme)) return fail(errc::unsupported);
  url.remove_prefix(scheme.size());
  auto slash = url.find('/');
  auto authority = url.substr(0, slash);
  HttpUrl out;
  out.target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return fail(errc::invalid_argument);
  std::string_view host = authority, port;
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return fail(errc::invalid_argument);
    host = authority.substr(1, close - 1);
    auto rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail(errc::invalid_argument);
      port = rest.substr(1);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  std::uint64_t p = 80;
  if (!port.empty() && (!parse_u64(port, p) || p == 0 || p > 65535)) return fail(errc::invalid_argument);
  if (host.empty()) return fail(errc::invalid_argument);
  out.endpoint.host = std::string(host);
  out.endpoint.port = static_cast<std::uint16_t>(p);
  return out;
}

Result<std::string> resolve_uri(std::string_view base_target, std::string_view ref, const net::Endpoint& server) {
  if (ref.empty()) return fail(errc::malformed);
  if (ref.starts_with("http://") || ref.starts_with("https://")) {
    auto abs = parse_http_url(ref);
    if (!abs || abs->endpoint.host != server.host || abs->endpoint.port != server.port) return fail(errc::unsupported);
    std::string t = std::move(abs->target);
    auto q = t.find('?');
    return remove_dot_segments(std::string_view(t).substr(0, q)) + (q == std::string::npos ? "" : t.substr(q));
  }
  std::string_view ref_path = ref.substr(0, ref.find('?'));
  std::string_view ref_query = ref.substr(ref_path.size());
  std::string path;
  if (ref_path.starts_with('/')) {
    path = ref_path;
  } else {
    auto base = base_target.substr(0, base_target.find('?'));
    path = std::string(base.substr(0, base.rfind('/') + 1));
    path.append(ref_path);
  }
  return remove_dot_segments(path) + std::string(ref_query);
}

std::optional<double> parse_program_date_time(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm|+hhmm]
  unsigned y, mo, d, h, mi, s;
  if (!digits(t, 0, 4, y) || t.size() < 19 || t[4] != '-' || !digits(t, 5, 2, mo) || t[7] != '-' ||
      !digits(t, 8, 2, d) || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !digits(t, 11, 2, h) || t[13] != ':' ||
      !digits(t, 14, 2, mi) || t[16] != ':' || !digits(t, 17, 2, s))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return std::nullopt;
  double frac = 0;
  std::size_t i = 19;
  if (i < t.size() && t[i] == '.') {
    double scale = 0.1;
    for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i, scale /= 10) frac += (t[i] - '0') * scale;
  }
  int offset = 0;
  if (i < t.size()) {
    if (t[i] == 'Z' || t[i] == 'z') {
      ++i;
    } else if (t[i] == '+' || t[i] == '-') {
      int sign = t[i] == '+' ? 1 : -1;
      unsigned oh, om;
      if (!digits(t, i + 1, 2, oh)) return std::nullopt;
      std::size_t m = i + 3;
      if (m < t.size() && t[m] == ':') ++m;
      if (!digits(t, m, 2, om)) return std::nullopt;
      offset = sign * static_cast<int>(oh * 3600 + om * 60);
      i = m + 2;
    } else {
      return std::nullopt;
    }
  }
  if (i != t.size()) return std::nullopt;
  double secs = static_cast<double>(days_from_civil(y, mo, d)) * 86400.0 + h * 3600.0 + mi * 60.0 + s;
  return secs + frac - offset;
}

Result<MultivariantPlaylist> parse_multivariant(Bytes text) {
  MultivariantPlaylist out;
  std::string_view body = as_chars(text.view());
  if (!body.starts_with("#EXTM3U")) return fail(errc::malformed);
  std::optional<Variant> pending;
  bool bad = false;
  for_each_line(body, [&](std::string_view line) {
    std::string_view v;
    if (tag(line, "#EXT-X-STREAM-INF:", v)) {
      pending.emplace();
      for_each_attr(v, [&](std::string_view name, std::string_view value) {
        if (name == "BANDWIDTH")
          bad |= !parse_u64(value, pending->bandwidth);
        else if (name == "CODECS")
          pending->codecs = value;
        else if (name == "RESOLUTION")
          pending->resolution = value;
        else if (name == "AUDIO")
          pending->audio_group = value;
      });
    } else if (tag(line, "#EXT-X-MEDIA:", v)) {
      MediaRendition r;
      for_each_attr(v, [&](std::string_view name, std::string_view value) {
        if (name == "TYPE")
          r.type = value;
        else if (name == "GROUP-ID")
          r.group = value;
        else if (name == "NAME")
          r.name = value;
        else if (name == "URI")
          r.uri = value;
        else if (name == "DEFAULT")
          r.is_default = value == "YES";
      });
      out.media.push_back(r);
    } else if (line.front() != '#' && pending) {
      pending->uri = line;
      out.variants.push_back(*pending);
      pending.reset();
    }
  });
  if (bad) return fail(errc::malformed);
  out.text = std::move(text);
  return out;
}

const Variant* first_video_variant(const MultivariantPlaylist& m) {
  for (auto& v : m.variants) {
    bool video = !v.resolution.empty();
    for (std::string_view c : {"avc1", "avc3", "hvc1", "hev1", "av01", "vp09"})
      video = video || v.codecs.find(c) != std::string_view::npos;
    if (video) return &v;
  }
  return m.variants.empty() ? nullptr : &m.variants.front();
}

const MediaRendition* audio_rendition(const MultivariantPlaylist& m, const Variant& v) {
  if (v.audio_group.empty()) return nullptr;
  const MediaRendition* first = nullptr;
  for (auto& r : m.media) {
    if (r.type != "AUDIO" || r.group != v.audio_group || r.uri.empty()) continue;
    if (r.is_default) return &r;
    if (!first) first = &r;
  }
  return first;
}

Result<MediaPlaylist> parse_media_playlist(Bytes text) {
  MediaPlaylist out;
  std::string_view body = as_chars(text.view());
  if (!body.starts_with("#EXTM3U")) return fail(errc::malformed);
  bool bad = false;
  std::uint64_t msn = 0;
  bool msn_set = false;
  double pending_extinf = -1;
  double segment_pdt = kNoTime;   // PROGRAM-DATE-TIME of the segment being listed, if tagged
  double previous_end = kNoTime;  // end of the previous segment: the next one's PDT if untagged
  double part_offset = 0;
  std::uint32_t part_index = 0;
  std::string_view map_uri;
  auto segment_start = [&] { return std::isnan(segment_pdt) ? previous_end : segment_pdt; };
  for_each_line(body, [&](std::string_view line) {
    std::string_view v;
    if (bad) return;
    if (line.front() != '#') {
      // A segment URI: the segment whose parts (if any) were just listed is complete.
      if (pending_extinf < 0) {
        bad = true;
        return;
      }
      Segment s;
      s.msn = msn;
      s.duration = pending_extinf;
      s.pdt = segment_start();
      s.uri = line;
      s.map_uri = map_uri;
      s.part_count = part_index;
      out.segments.push_back(s);
      previous_end = std::isnan(s.pdt) ? kNoTime : s.pdt + s.duration;
      ++msn;
      pending_extinf = -1;
      segment_pdt = kNoTime;
      part_offset = 0;
      part_index = 0;
    } else if (tag(line, "#EXT-X-PART:", v)) {
      Part p;
      p.msn = msn;
      p.index = part_index++;
      bool has_duration = false;
      for_each_attr(v, [&](std::string_view name, std::string_view value) {
        if (name == "DURATION")
          has_duration = parse_double(value, p.duration);
        else if (name == "URI")
          p.uri = value;
        else if (name == "INDEPENDENT")
          p.independent = value == "YES";
        else if (name == "GAP")
          p.gap = value == "YES";
      });
      if (!has_duration || p.uri.empty()) {
        bad = true;
        return;
      }
      double start = segment_start();
      p.pdt = std::isnan(start) ? kNoTime : start + part_offset;
      p.map_uri = map_uri;
      part_offset += p.duration;
      out.parts.push_back(p);
    } else if (tag(line, "#EXTINF:", v)) {
      bad = !parse_double(v.substr(0, v.find(',')), pending_extinf);
    } else if (tag(line, "#EXT-X-PROGRAM-DATE-TIME:", v)) {
      auto t = parse_program_date_time(v);
      if (!t)
        bad = true;
      else
        segment_pdt = *t;
    } else if (tag(line, "#EXT-X-MEDIA-SEQUENCE:", v)) {
      bad = msn_set || !out.segments.empty() || !out.parts.empty() || !parse_u64(v, out.media_sequence);
      msn = out.media_sequence;
      msn_set = true;
    } else if (tag(line, "#EXT-X-TARGETDURATION:", v)) {
      bad = !parse_double(v, out.target_duration);
    } else if (tag(line, "#EXT-X-PART-INF:", v)) {
      for_each_attr(v, [&](std::string_view name, std::string_view value) {
        if (name == "PART-TARGET") bad |= !parse_double(value, out.part_target);
      });
    } else if (tag(line, "#EXT-X-SERVER-CONTROL:", v)) {
      for_each_attr(v, [&](std::string_view name, std::string_view value) {
        if (name == "CAN-BLOCK-RELOAD")
          out.can_block_reload = value == "YES";
        else if (name == "PART-HOLD-BACK")
          bad |= !parse_double(value, out.part_hold_back);
        else if (name == "HOLD-BACK")
          bad |= !parse_double(value, out.hold_back);
        else if (name == "CAN-SKIP-UNTIL")
          bad |= !parse_double(value, out.can_skip_until);
      });
    } else if (tag(line, "#EXT-X-MAP:", v)) {
      for_each_attr(v, [&](std::string_view name, std::string_view value) {
        if (name == "URI") map_uri = value;
      });
    } else if (tag(line, "#EXT-X-SKIP:", v)) {
      // A delta update (§4.4.5.2): the skipped segments still count in the sequence.
      for_each_attr(v, [&](std::string_view name, std::string_view value) {
        std::uint64_t n = 0;
        if (name == "SKIPPED-SEGMENTS") {
          bad |= !parse_u64(value, n);
          msn += n;
          out.skipped_segments += n;
        }
      });
    } else if (tag(line, "#EXT-X-PRELOAD-HINT:", v)) {
      std::string_view type, uri;
      for_each_attr(v, [&](std::string_view name, std::string_view value) {
        if (name == "TYPE")
          type = value;
        else if (name == "URI")
          uri = value;
      });
      if (type == "PART") out.preload_hint = uri;
    } else if (line == "#EXT-X-ENDLIST") {
      out.endlist = true;
    }
  });
  if (bad) return fail(errc::malformed);
  out.next_msn = msn;
  out.text = std::move(text);
  return out;
}

double MediaPlaylist::media_after(std::size_t part) const {
  double d = 0;
  for (std::size_t i = part; i < parts.size(); ++i) d += parts[i].duration;
  return d;
}

std::optional<std::size_t> ll_start_part(const MediaPlaylist& p) {
  if (p.parts.empty()) return std::nullopt;
  double hold = p.part_hold_back > 0 ? p.part_hold_back : 3 * p.part_target;
  // Walk back from the live edge, adding up part durations.
  double behind = 0;
  std::optional<std::size_t> at_hold;
  for (std::size_t i = p.parts.size(); i-- > 0;) {
    behind += p.parts[i].duration;
    if (behind + 1e-6 < hold) continue;
    if (!at_hold) at_hold = i;
    if (p.parts[i].independent) return i;
  }
  for (std::size_t i = 0; i < p.parts.size(); ++i)
    if (p.parts[i].independent) return i;
  return at_hold.value_or(0);
}

std::optional<std::size_t> part_at(const MediaPlaylist& p, double pdt) {
  if (p.parts.empty()) return std::nullopt;
  std::optional<std::size_t> newest;
  for (std::size_t i = p.parts.size(); i-- > 0;) {
    if (std::isnan(p.parts[i].pdt) || p.parts[i].pdt > pdt + 1e-3) continue;
    if (!newest) newest = i;
    if (p.parts[i].independent) return i;
  }
  return newest.value_or(0);
}

std::size_t parts_after(const MediaPlaylist& p, std::uint64_t msn, std::uint32_t index) {
  std::size_t i = p.parts.size();
  while (i > 0 && (p.parts[i - 1].msn > msn || (p.parts[i - 1].msn == msn && p.parts[i - 1].index > index))) --i;
  return i;
}

bool follows(const MediaPlaylist& p, std::size_t i, std::uint64_t msn, std::uint32_t index) {
  if (i >= p.parts.size()) return false;
  const Part& next = p.parts[i];
  if (next.msn == msn) return next.index == index + 1;
  if (next.msn != msn + 1 || next.index != 0) return false;
  // Part 0 of the next segment follows only if `index` was the last part of a complete `msn`.
  for (auto& s : p.segments)
    if (s.msn == msn) return s.part_count == 0 || s.part_count == index + 1;
  return true;  // `msn` already left the playlist: nothing to contradict it
}

std::string blocking_query(std::uint64_t msn, std::uint32_t index) {
  return "_HLS_msn=" + std::to_string(msn) + "&_HLS_part=" + std::to_string(index + 1);
}

std::optional<std::size_t> poll_start_segment(const MediaPlaylist& p, std::size_t count) {
  if (p.segments.empty()) return std::nullopt;
  return p.segments.size() > count ? p.segments.size() - count : 0;
}

std::optional<std::size_t> segment_at(const MediaPlaylist& p, double pdt) {
  if (p.segments.empty()) return std::nullopt;
  for (std::size_t i = p.segments.size(); i-- > 0;)
    if (!std::isnan(p.segments[i].pdt) && p.segments[i].pdt <= pdt + 1e-3) return i;
  return 0;
}

std::size_t segments_after(const MediaPlaylist& p, std::uint64_t msn) {
  std::size_t i = p.segments.size();
  while (i > 0 && p.segments[i - 1].msn > msn) --i;
  return i;
}

}  // namespace sf::loadgen
