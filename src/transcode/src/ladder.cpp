#include "sf/transcode/ladder.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace sf::transcode {
namespace {

Rung rung(std::string name, std::uint32_t w, std::uint32_t h, double fps, std::int64_t kbps, std::string profile,
          std::string level, std::string preset) {
  Rung r;
  r.name = std::move(name);
  r.width = w;
  r.height = h;
  r.max_fps = fps;
  r.bitrate = kbps * 1000;
  r.maxrate = kbps * 1100;  // 10% VBV headroom over the target, declared as BANDWIDTH
  r.bufsize = r.maxrate;    // one second of the peak rate
  r.profile = std::move(profile);
  r.level = std::move(level);
  r.preset = std::move(preset);
  return r;
}

std::uint32_t even(double v) {
  auto n = static_cast<std::uint32_t>(std::lround(v / 2)) * 2;
  return std::max<std::uint32_t>(n, 2);
}

bool parse_int(std::string_view s, std::int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_rate(std::string_view s, std::int64_t& out) {
  std::int64_t mult = 1;
  if (!s.empty() && (s.back() == 'k' || s.back() == 'K'))
    mult = 1000, s.remove_suffix(1);
  else if (!s.empty() && (s.back() == 'm' || s.back() == 'M'))
    mult = 1000000, s.remove_suffix(1);
  if (!parse_int(s, out) || out <= 0 || out > 1000000000 / mult) return false;
  out *= mult;
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    auto at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Profile default_profile() {
  // HLS authoring specification for Apple devices, 16:9 ladder; sports keep up to 60 fps on the
  // upper rungs, the lower rungs are capped at 30 fps as the guidance advises.
  Profile p;
  p.name = "default";
  p.rungs = {
      rung("1080p", 1920, 1080, 60, 6000, "high", "4.2", "veryfast"),
      rung("720p", 1280, 720, 60, 3000, "high", "4.2", "veryfast"),
      rung("480p", 854, 480, 30, 1500, "main", "3.1", "veryfast"),
      rung("360p", 640, 360, 30, 800, "main", "3.1", "veryfast"),
      rung("160p", 284, 160, 30, 200, "baseline", "3.0", "veryfast"),
  };
  return p;
}

Profile default_source_profile() {
  Profile p = default_profile();
  p.name = "default-source";
  p.source = true;
  return p;
}

Profile passthrough_profile() {
  Profile p;
  p.name = "passthrough";
  p.transcode = false;
  return p;
}

Result<std::vector<Profile>> parse_profiles(std::string_view text, std::string* error) {
  std::vector<Profile> out;
  auto fail = [&](std::string why) -> Result<std::vector<Profile>> {
    if (error) *error = std::move(why);
    return std::unexpected(make_error_code(errc::invalid_argument));
  };
  text = trim(text);
  if (text.empty()) return out;
  for (auto item : split(text, ';')) {
    item = trim(item);
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) return fail(fmt::format("'{}': expected name=rung,rung,...", item));
    Profile p;
    p.name = std::string(trim(item.substr(0, eq)));
    for (auto rs : split(item.substr(eq + 1), ',')) {
      rs = trim(rs);
      if (rs == kSourceRungName) {
        if (p.source) return fail(fmt::format("profile '{}': source listed twice", p.name));
        p.source = true;
        continue;
      }
      auto f = split(rs, ':');
      if (f.size() < 3 || f.size() > 7)
        return fail(fmt::format("rung '{}': expected NAME:WxH@FPS:BITRATE[:MAXRATE[:PRESET[:PROFILE[:LEVEL]]]]", rs));
      Rung r;
      r.name = std::string(f[0]);
      auto x = f[1].find('x'), at = f[1].find('@');
      std::int64_t w = 0, h = 0, fps = 0;
      if (r.name.empty() || x == std::string_view::npos || at == std::string_view::npos || at < x ||
          !parse_int(f[1].substr(0, x), w) || !parse_int(f[1].substr(x + 1, at - x - 1), h) ||
          !parse_int(f[1].substr(at + 1), fps) || w < 16 || h < 16 || w > 8192 || h > 8192 || fps < 1 || fps > 240)
        return fail(fmt::format("rung '{}': size and rate as WxH@FPS, 16..8192 pixels, 1..240 fps", rs));
      r.width = static_cast<std::uint32_t>(w);
      r.height = static_cast<std::uint32_t>(h);
      r.max_fps = double(fps);
      if (!parse_rate(f[2], r.bitrate)) return fail(fmt::format("rung '{}': bit rate like 3000k", rs));
      r.maxrate = r.bitrate + r.bitrate / 10;
      if (f.size() > 3 && !f[3].empty() && !parse_rate(f[3], r.maxrate))
        return fail(fmt::format("rung '{}': max bit rate like 3300k", rs));
      if (r.maxrate < r.bitrate) return fail(fmt::format("rung '{}': max bit rate below the bit rate", rs));
      r.bufsize = r.maxrate;
      if (f.size() > 4 && !f[4].empty()) r.preset = std::string(f[4]);
      if (f.size() > 5) r.profile = std::string(f[5]);
      if (f.size() > 6) r.level = std::string(f[6]);
      p.rungs.push_back(std::move(r));
    }
    if (p.rungs.empty() && !p.source) return fail(fmt::format("profile '{}' has no rungs", p.name));
    if (p.rungs.empty()) p.transcode = false;  // the source alone: passthrough
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<PlannedRung> plan_ladder(const Profile& profile, std::uint32_t src_width, std::uint32_t src_height,
                                     double src_fps) {
  std::vector<PlannedRung> out;
  if (!profile.transcode || src_width == 0 || src_height == 0) return out;
  auto fit = [&](const Rung& r, std::size_t index) {
    PlannedRung p;
    p.rung = r;
    p.index = index;
    // Fit the source into the rung's box, keeping the aspect ratio; never larger than the source.
    double scale = std::min({double(r.width) / src_width, double(r.height) / src_height, 1.0});
    p.width = std::min(even(src_width * scale), src_width & ~1u ? src_width & ~1u : 2u);
    p.height = std::min(even(src_height * scale), src_height & ~1u ? src_height & ~1u : 2u);
    p.fps = src_fps > 0 ? std::min(src_fps, r.max_fps) : 0;
    return p;
  };
  std::size_t smallest = 0;
  for (std::size_t i = 0; i < profile.rungs.size(); ++i) {
    const Rung& r = profile.rungs[i];
    if (std::uint64_t(r.width) * r.height <
        std::uint64_t(profile.rungs[smallest].width) * profile.rungs[smallest].height)
      smallest = i;
    // A rung whose box, fitted around the source, would need the picture enlarged is left out.
    bool upscale = std::min(double(r.width) / src_width, double(r.height) / src_height) > 1.0;
    if (!upscale) out.push_back(fit(r, i));
  }
  if (out.empty() && !profile.rungs.empty()) out.push_back(fit(profile.rungs[smallest], smallest));
  std::stable_sort(out.begin(), out.end(), [](const PlannedRung& a, const PlannedRung& b) {
    return std::uint64_t(a.width) * a.height > std::uint64_t(b.width) * b.height;
  });
  // Two rungs that come out the same size: the one with the higher bit rate stays.
  std::vector<PlannedRung> unique;
  for (auto& p : out) {
    bool dup = std::any_of(unique.begin(), unique.end(), [&](const PlannedRung& u) {
      return u.width == p.width && u.height == p.height && u.fps == p.fps;
    });
    // The source rung already offers the source's size.
    bool is_source = profile.source && p.width == (src_width & ~1u) && p.height == (src_height & ~1u);
    if (!dup && !is_source) unique.push_back(std::move(p));
  }
  return unique;
}

}  // namespace sf::transcode
