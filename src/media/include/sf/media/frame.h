// The media model shared by every role: tracks with their codec configuration, and frames.
// A MediaFrame is one access unit whose bytes are a shared immutable slice of what the network
// delivered; copying a MediaFrame copies a reference, never media bytes. Plain values: any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sf/core/bytes.h"

namespace sf::media {

enum class MediaType : std::uint8_t { video, audio };

enum class Codec : std::uint8_t { unknown, h264, hevc, av1, vp9, aac, mp3, opus, ac3, eac3, flac };
// "h264", "hevc", "av1", "vp9", "aac", "mp3", "opus", "ac3", "eac3", "flac"
std::string_view codec_name(Codec c);

constexpr std::uint32_t kVideoTimescale = 90000;

// Parsed from an AVCDecoderConfigurationRecord (+ its first SPS), HEVCDecoderConfigurationRecord
// (+ its SPS) or AV1CodecConfigurationRecord.
struct VideoConfig {
  Codec codec = Codec::unknown;
  std::uint8_t profile = 0;      // profile_idc (H.264/HEVC), seq_profile (AV1)
  std::uint8_t constraints = 0;  // H.264 constraint_set flags byte
  std::uint8_t level = 0;        // level_idc (H.264/HEVC), seq_level_idx_0 (AV1)
  std::uint32_t width = 0;       // luma samples after cropping, from the SPS (0 if unknown)
  std::uint32_t height = 0;
  std::uint8_t nalu_length_size = 4;  // H.264/HEVC length prefix size in bytes (1, 2 or 4)
  std::string codec_string;           // RFC 6381: "avc1.64001f", "hvc1.1.6.L93.B0", "av01.0.08M.08"
};

// Parsed from an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), an Opus ID header, a FLAC
// STREAMINFO, or the first frame's header (MP3, AC-3, E-AC-3).
struct AudioConfig {
  Codec codec = Codec::unknown;
  std::uint8_t object_type = 0;            // AAC: 2 = AAC-LC, 5 = SBR (HE-AAC), 29 = PS
  std::uint32_t sample_rate = 0;           // Hz (Opus: 48000, the rate it always decodes at)
  std::uint8_t channels = 0;               // AAC: channel configuration (1..7), 0 if in-band; others: count (with LFE)
  std::uint16_t samples_per_frame = 1024;  // nominal (Opus and FLAC frames may vary)
  std::string codec_string;                // "mp4a.40.2", "Opus", "ac-3", "ec-3", "fLaC"
};

// A track and its codec configuration. `record` holds the configuration record bytes exactly as
// received (avcC, hvcC, av1C or AudioSpecificConfig), for packagers to write into init segments
// and decoders to open with.
struct TrackConfig {
  std::uint32_t track_id = 0;  // 1 = video, 2 = audio for single-track sources
  MediaType type = MediaType::video;
  Codec codec = Codec::unknown;
  std::uint32_t timescale = kVideoTimescale;  // 90 kHz video, sample rate audio
  std::uint32_t version = 0;                  // increments each time this track's configuration changes
  // Opus: the ID header "OpusHead"; FLAC: the 34-byte STREAMINFO; MP3, AC-3, E-AC-3: empty.
  Bytes record;
  // Set by a transcoder: the rendition's name ("720p"; empty: the packager names it after the
  // track type) and its declared peak bit rate in bits/s (0: only what the packager measures).
  std::string name;
  std::uint64_t bandwidth = 0;
  std::optional<VideoConfig> video;
  std::optional<AudioConfig> audio;
};

struct MediaFrame {
  std::uint32_t track_id = 0;
  MediaType type = MediaType::video;
  Codec codec = Codec::unknown;
  std::int64_t dts = 0;  // in the track's timescale
  std::int64_t pts = 0;
  bool keyframe = false;             // IDR / random access point (every audio frame is one)
  std::uint32_t config_version = 0;  // TrackConfig::version this frame decodes with
  Bytes data;                        // H.264/HEVC: length-prefixed NAL units; AAC: raw frame; AV1: OBUs
  // Rises by one at each discontinuity of the source (ingest: a timestamp jump, with
  // ingest.timestamp_jump=discontinuity), from 0 at each publish; times stay on one timeline. A
  // packager starts a discontinuity where it rises.
  std::uint32_t epoch = 0;
};

}  // namespace sf::media
