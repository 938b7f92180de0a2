// ABR ladders as configuration: named profiles of rungs, and the plan that fits a profile to a
// source (never upscaling, keeping the source's aspect ratio, capping the frame rate). Plain values
// and pure functions: any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sf/core/result.h"

namespace sf::transcode {

struct Rung {
  std::string name;          // rendition name, "720p"
  std::uint32_t width = 0;   // box the picture is fitted into (aspect ratio kept)
  std::uint32_t height = 0;  // the rung's nominal height; a rung taller than the source is skipped
  double max_fps = 60;       // the source frame rate, capped at this
  std::int64_t bitrate = 0;  // bits/s, the encoder's target
  std::int64_t maxrate = 0;  // bits/s, VBV peak: the declared BANDWIDTH
  std::int64_t bufsize = 0;  // bits, VBV buffer (0: one second of maxrate)
  std::string profile;       // H.264 profile: "baseline", "main", "high"
  std::string level;         // H.264 level: "4.2", "3.1", "" (encoder chooses)
  std::string preset = "veryfast";
};

struct Profile {
  std::string name;
  std::vector<Rung> rungs;  // any order; plans list them from the largest down
  bool transcode = true;    // false: the source goes through untouched (profile "passthrough")
  // The source's video as one more rung, named "source": its frames go to the packager untouched
  // (no decode, no encode for it), and the other rungs' keyframes follow the source's (see
  // Pipeline). A rung that would come out at the source's size is left out: the source is that rung.
  bool source = false;
};

constexpr std::string_view kSourceRungName = "source";

// "default": the HLS authoring guidance's 16:9 ladder for sports (1080p, 720p, 480p, 360p, 160p),
// source frame rate up to 60. "default-source": the same with the source as a rung (and no rung
// at the source's own size). "passthrough": no transcoding.
Profile default_profile();
Profile default_source_profile();
Profile passthrough_profile();

// Profiles from text, one per ';'-separated item:
//   name=rung,rung,...   rung = NAME:WxH@FPS:BITRATE[:MAXRATE[:PRESET[:PROFILE[:LEVEL]]]] or `source`
//   e.g. "mobile=360p:640x360@30:800k:880k:veryfast:main:3.1,160p:284x160@15:145k"
//        "src=source,360p:640x360@30:800k,160p:284x160@15:145k" (the source passed through as a rung)
// A profile of `source` alone is "passthrough" under another name.
// Bit rates take k/M suffixes. Errors name the item.
Result<std::vector<Profile>> parse_profiles(std::string_view text, std::string* error = nullptr);

// A rung fitted to a source.
struct PlannedRung {
  Rung rung;
  std::size_t index = 0;    // the rung's position in the profile
  std::uint32_t width = 0;  // even, aspect ratio of the source kept
  std::uint32_t height = 0;
  double fps = 0;  // output frame rate (0: follow the source's timestamps)
};

// Rungs taller or wider than the source are left out (never upscale) except that a source smaller
// than every rung still gets the smallest rung at the source's size; with profile.source, a rung
// at the source's size is left out (the source rung is that size). Largest first. src_fps 0 =
// unknown (the caps still apply as decimation limits).
std::vector<PlannedRung> plan_ladder(const Profile& profile, std::uint32_t src_width, std::uint32_t src_height,
                                     double src_fps);

}  // namespace sf::transcode
