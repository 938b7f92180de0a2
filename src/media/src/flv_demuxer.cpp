#include <algorithm>
#include <cstdio>
#include <optional>
#include <string_view>
#include <utility>

#include "sf/core/byte_reader.h"
#include "sf/media/codec_config.h"
#include "sf/media/flv.h"

namespace sf::media {
namespace {

constexpr std::uint32_t fourcc(std::string_view s) {
  std::uint32_t v = 0;
  for (char c : s) v = v << 8 | static_cast<std::uint8_t>(c);
  return v;
}

// E-RTMP v2: VideoPacketType, AudioPacketType and AvMultitrackType values.
enum VideoPacketType : std::uint8_t {
  kVideoSequenceStart = 0,
  kVideoCodedFrames = 1,
  kVideoSequenceEnd = 2,
  kVideoCodedFramesX = 3,
  kVideoMetadata = 4,
  kVideoMpeg2TsSequenceStart = 5,
  kVideoMultitrack = 6,
  kVideoModEx = 7,
};
enum AudioPacketType : std::uint8_t {
  kAudioSequenceStart = 0,
  kAudioCodedFrames = 1,
  kAudioSequenceEnd = 2,
  kAudioMultichannelConfig = 4,
  kAudioMultitrack = 5,
  kAudioModEx = 7,
};
constexpr std::uint8_t kMultitrackOneTrack = 0;
constexpr std::uint8_t kVideoFrameKey = 1;
constexpr std::uint8_t kVideoFrameCommand = 5;
constexpr std::uint8_t kLegacyCodecAvc = 7;
constexpr std::uint8_t kLegacyCodecHevc = 12;  // non-standard, sent by some encoders
constexpr std::uint8_t kSoundFormatMp3 = 2;
constexpr std::uint8_t kSoundFormatExHeader = 9;
constexpr std::uint8_t kSoundFormatAac = 10;
constexpr std::uint8_t kSoundFormatMp3At8kHz = 14;
constexpr std::uint32_t kVideoTrackId = 1;
constexpr std::uint32_t kAudioTrackId = 2;

// What a tag body asks for, once its headers are read.
struct Packet {
  enum class Kind { sequence_start, coded_frame, skip, ignore };
  Kind kind = Kind::ignore;
  Codec codec = Codec::unknown;
  bool keyframe = false;
  std::int32_t composition_ms = 0;
  std::size_t payload_offset = 0;
};

Result<void> propagate(const std::error_code& ec) {
  return std::unexpected(ec);
}

std::string fourcc_text(std::uint32_t v) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) {
    const char c = static_cast<char>((v >> shift) & 0xff);
    if (c < 0x20 || c > 0x7e) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", v);
      return hex;
    }
    s += c;
  }
  return s;
}

// FLV 10.1 E.4.3.1 CodecID.
const char* legacy_video_codec_name(std::uint8_t id) {
  switch (id) {
    case 1:
      return "JPEG";
    case 2:
      return "Sorenson H.263";
    case 3:
      return "Screen video";
    case 4:
      return "On2 VP6";
    case 5:
      return "On2 VP6 with alpha channel";
    case 6:
      return "Screen video version 2";
    default:
      return "unknown";
  }
}

// FLV 10.1 E.4.2.1 SoundFormat.
const char* sound_format_name(std::uint8_t format) {
  switch (format) {
    case 0:
      return "Linear PCM, platform endian";
    case 1:
      return "ADPCM";
    case 2:
      return "MP3";
    case 3:
      return "Linear PCM, little endian";
    case 4:
      return "Nellymoser 16 kHz mono";
    case 5:
      return "Nellymoser 8 kHz mono";
    case 6:
      return "Nellymoser";
    case 7:
      return "G.711 A-law";
    case 8:
      return "G.711 mu-law";
    case 11:
      return "Speex";
    case 14:
      return "MP3 8 kHz";
    case 15:
      return "device-specific sound";
    default:
      return "reserved";
  }
}

// E-RTMP v2 ModEx (video 7, audio 7): size u8 + 1 (256 means u16 + 1 follows), data, then
// modExType ub4 | next packet type ub4. Only TimestampOffsetNano is defined; sub-ms offsets are
// below our timestamp resolution, so every ModEx is skipped.
Result<std::uint8_t> skip_mod_ex(ByteReader& r, std::uint8_t packet_type, std::uint8_t mod_ex_value) {
  while (packet_type == mod_ex_value) {
    auto small = r.u8();
    if (!small) return std::unexpected(small.error());
    std::size_t size = std::size_t{*small} + 1;
    if (size == 256) {
      auto large = r.u16();
      if (!large) return std::unexpected(large.error());
      size = std::size_t{*large} + 1;
    }
    if (auto s = r.skip(size); !s) return std::unexpected(s.error());
    auto next = r.u8();
    if (!next) return std::unexpected(next.error());
    packet_type = *next & 0x0f;
  }
  return packet_type;
}

// E-RTMP v2 Multitrack prefix: AvMultitrackType ub4 | packetType ub4, FourCC, trackId u8. Only
// OneTrack carrying track 0 maps onto our single track per media type.
Result<std::uint8_t> read_one_track(ByteReader& r, const char* media, std::uint32_t& four_cc, std::string& detail) {
  auto b = r.u8();
  if (!b) return std::unexpected(b.error());
  const std::uint8_t multitrack_type = *b >> 4;
  if (multitrack_type != kMultitrackOneTrack) {
    detail = std::string(media) + " multitrack type " + std::to_string(multitrack_type);
    return fail(errc::unsupported);
  }
  auto fc = r.u32();
  if (!fc) return std::unexpected(fc.error());
  four_cc = *fc;
  auto track = r.u8();
  if (!track) return std::unexpected(track.error());
  if (*track != 0) {
    detail = std::string(media) + " multitrack track id " + std::to_string(*track);
    return fail(errc::unsupported);
  }
  return static_cast<std::uint8_t>(*b & 0x0f);
}

// SPECS 4: legacy video tag body, FrameType ub4 | CodecID ub4, AVCPacketType, si24 composition.
// The FourCC of an Enhanced RTMP packet, through a OneTrack multitrack wrapper if there is one;
// `packet_type` becomes the wrapped packet's type.
Result<std::uint32_t> read_four_cc(ByteReader& r, const char* media, std::uint8_t& packet_type, std::uint8_t multitrack,
                                   std::uint8_t mod_ex, std::string& detail) {
  std::uint32_t four_cc = 0;
  if (packet_type != multitrack) {
    auto fc = r.u32();
    if (!fc) return std::unexpected(fc.error());
    return *fc;
  }
  auto inner = read_one_track(r, media, four_cc, detail);
  if (!inner) return std::unexpected(inner.error());
  if (*inner == multitrack || *inner == mod_ex) {
    detail = std::string(media) + " packet type " + std::to_string(*inner) + " inside multitrack";
    return fail(errc::malformed);
  }
  packet_type = *inner;
  return four_cc;
}

Result<Packet> read_legacy_video(ByteReader& r, std::uint8_t b0, std::string& detail) {
  Packet p;
  const std::uint8_t frame_type = b0 >> 4;
  const std::uint8_t codec_id = b0 & 0x0f;
  if (frame_type == kVideoFrameCommand) {
    p.kind = Packet::Kind::skip;
    return p;
  }
  if (codec_id == kLegacyCodecAvc) {
    p.codec = Codec::h264;
  } else if (codec_id == kLegacyCodecHevc) {
    p.codec = Codec::hevc;
  } else {
    detail = "video codec id " + std::to_string(codec_id) + " (" + legacy_video_codec_name(codec_id) + ")";
    return fail(errc::unsupported);
  }
  auto packet_type = r.u8();
  if (!packet_type) return std::unexpected(packet_type.error());
  auto composition = r.s24();
  if (!composition) return std::unexpected(composition.error());
  p.payload_offset = r.position();
  switch (*packet_type) {
    case 0:
      p.kind = Packet::Kind::sequence_start;
      return p;
    case 1:
      p.kind = Packet::Kind::coded_frame;
      p.keyframe = frame_type == kVideoFrameKey;
      p.composition_ms = *composition;
      return p;
    case 2:
      p.kind = Packet::Kind::ignore;  // end of sequence
      return p;
    default:
      detail = "video AVCPacketType " + std::to_string(*packet_type);
      return fail(errc::malformed);
  }
}

// SPECS 5: isExHeader ub1 | FrameType ub3 | VideoPacketType ub4, [ModEx], [Multitrack], FourCC.
Result<Packet> read_ex_video(ByteReader& r, std::uint8_t b0, std::string& detail) {
  Packet p;
  const std::uint8_t frame_type = (b0 >> 4) & 0x07;
  auto packet_type = skip_mod_ex(r, b0 & 0x0f, kVideoModEx);
  if (!packet_type) return std::unexpected(packet_type.error());
  if (*packet_type != kVideoMetadata && frame_type == kVideoFrameCommand) {
    p.kind = Packet::Kind::skip;  // the body is a VideoCommand byte, not a FourCC
    return p;
  }
  std::uint8_t type = *packet_type;
  auto fc = read_four_cc(r, "video", type, kVideoMultitrack, kVideoModEx, detail);
  if (!fc) return std::unexpected(fc.error());
  packet_type = type;
  std::uint32_t four_cc = *fc;
  if (four_cc == fourcc("avc1")) {
    p.codec = Codec::h264;
  } else if (four_cc == fourcc("hvc1")) {
    p.codec = Codec::hevc;
  } else if (four_cc == fourcc("av01")) {
    p.codec = Codec::av1;
  } else {
    detail = "video FourCC " + fourcc_text(four_cc);
    return fail(errc::unsupported);
  }
  switch (*packet_type) {
    case kVideoSequenceStart:
      p.kind = Packet::Kind::sequence_start;
      break;
    case kVideoCodedFrames:
      // av01 CodedFrames carry OBUs with no composition offset.
      if (p.codec != Codec::av1) {
        auto composition = r.s24();
        if (!composition) return std::unexpected(composition.error());
        p.composition_ms = *composition;
      }
      p.kind = Packet::Kind::coded_frame;
      break;
    case kVideoCodedFramesX:
      p.kind = Packet::Kind::coded_frame;
      break;
    case kVideoSequenceEnd:
    case kVideoMetadata:
    case kVideoMpeg2TsSequenceStart:  // an alternative AV1 descriptor; SequenceStart is what we use
      p.kind = Packet::Kind::ignore;
      break;
    default:
      detail = "video packet type " + std::to_string(*packet_type);
      return fail(errc::malformed);
  }
  p.keyframe = frame_type == kVideoFrameKey;
  p.payload_offset = r.position();
  return p;
}

Result<Packet> read_video(ByteView body, std::string& detail) {
  ByteReader r(body);
  auto b0 = r.u8();
  if (!b0) return std::unexpected(b0.error());
  if (*b0 & 0x80) return read_ex_video(r, *b0, detail);
  return read_legacy_video(r, *b0, detail);
}

Result<Packet> read_audio(ByteView body, std::string& detail) {
  ByteReader r(body);
  auto b0 = r.u8();
  if (!b0) return std::unexpected(b0.error());
  const std::uint8_t format = *b0 >> 4;
  Packet p;
  p.codec = Codec::aac;
  p.keyframe = true;
  if (format == kSoundFormatAac) {
    auto packet_type = r.u8();
    if (!packet_type) return std::unexpected(packet_type.error());
    p.payload_offset = r.position();
    if (*packet_type == 0) {
      p.kind = Packet::Kind::sequence_start;
    } else if (*packet_type == 1) {
      p.kind = Packet::Kind::coded_frame;
    } else {
      detail = "audio AACPacketType " + std::to_string(*packet_type);
      return fail(errc::malformed);
    }
    return p;
  }
  if (format == kSoundFormatMp3 || format == kSoundFormatMp3At8kHz) {
    // Legacy MP3: no sequence header; each tag carries whole MPEG audio frames whose headers say
    // the real sample rate (FLV's rate bits cannot say 48 kHz).
    p.codec = Codec::mp3;
    p.kind = Packet::Kind::coded_frame;
    p.payload_offset = r.position();
    return p;
  }
  if (format != kSoundFormatExHeader) {
    detail = "audio format " + std::to_string(format) + " (" + sound_format_name(format) + ")";
    return fail(errc::unsupported);
  }
  auto packet_type = skip_mod_ex(r, *b0 & 0x0f, kAudioModEx);
  if (!packet_type) return std::unexpected(packet_type.error());
  std::uint8_t type = *packet_type;
  auto fc = read_four_cc(r, "audio", type, kAudioMultitrack, kAudioModEx, detail);
  if (!fc) return std::unexpected(fc.error());
  packet_type = type;
  std::uint32_t four_cc = *fc;
  if (four_cc == fourcc(".mp3")) {
    p.codec = Codec::mp3;
  } else if (four_cc == fourcc("Opus")) {
    p.codec = Codec::opus;
  } else if (four_cc == fourcc("ac-3")) {
    p.codec = Codec::ac3;
  } else if (four_cc == fourcc("ec-3")) {
    p.codec = Codec::eac3;
  } else if (four_cc == fourcc("fLaC")) {
    p.codec = Codec::flac;
  } else if (four_cc != fourcc("mp4a")) {
    detail = "audio FourCC " + fourcc_text(four_cc);
    return fail(errc::unsupported);
  }
  switch (*packet_type) {
    case kAudioSequenceStart:
      p.kind = Packet::Kind::sequence_start;
      break;
    case kAudioCodedFrames:
      p.kind = Packet::Kind::coded_frame;
      break;
    case kAudioSequenceEnd:
    case kAudioMultichannelConfig:  // the ASC carries the channel configuration we use
      p.kind = Packet::Kind::ignore;
      break;
    default:
      detail = "audio packet type " + std::to_string(*packet_type);
      return fail(errc::malformed);
  }
  p.payload_offset = r.position();
  return p;
}

Result<VideoConfig> parse_video_record(Codec codec, ByteView record) {
  switch (codec) {
    case Codec::h264:
      return parse_avcc(record);
    case Codec::hevc:
      return parse_hvcc(record);
    case Codec::av1:
      return parse_av1c(record);
    default:
      return fail(errc::unsupported);
  }
}

// An MPEG-1/2/2.5 audio frame header (ISO/IEC 11172-3 2.4.1.3): sample rate, channels and
// samples per frame. nullopt if `payload` does not start with one.
std::optional<AudioConfig> parse_mpeg_audio_header(ByteView payload) {
  if (payload.size() < 4) return std::nullopt;
  auto b = [&](std::size_t i) { return std::to_integer<std::uint8_t>(payload[i]); };
  if (b(0) != 0xff || (b(1) & 0xe0) != 0xe0) return std::nullopt;
  const int version = (b(1) >> 3) & 3;  // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
  const int layer = (b(1) >> 1) & 3;    // 1: Layer III, 2: II, 3: I
  const int rate_index = (b(2) >> 2) & 3;
  if (version == 1 || layer == 0 || rate_index == 3 || (b(2) >> 4) == 15) return std::nullopt;
  constexpr std::uint32_t kRates[3] = {44100, 48000, 32000};
  AudioConfig cfg;
  cfg.codec = Codec::mp3;
  cfg.sample_rate = kRates[rate_index] >> (version == 3 ? 0 : version == 2 ? 1 : 2);
  cfg.channels = (b(3) >> 6) == 3 ? 1 : 2;
  cfg.samples_per_frame = layer == 3 ? 384 : layer == 2 || version == 3 ? 1152 : 576;
  cfg.codec_string = "mp4a.40.34";
  return cfg;
}

// Codecs whose frames carry their configuration (no sequence header): the track is announced from
// a frame's header. nullopt if the frame does not start with one.
bool announced_by_frames(Codec codec) {
  return codec == Codec::mp3 || codec == Codec::ac3 || codec == Codec::eac3;
}

std::optional<AudioConfig> frame_audio_config(Codec codec, ByteView payload) {
  if (codec == Codec::mp3) return parse_mpeg_audio_header(payload);
  auto cfg = parse_ac3_frame_header(payload);
  if (!cfg || cfg->codec != codec) return std::nullopt;  // E-RTMP ac-3 carries AC-3 frames, ec-3 E-AC-3
  return *cfg;
}

// The configuration record a sequence header carries, sliced out of `record`, and what it says.
// nullopt (no error) for a sequence header that configures nothing here (an Opus comment header).
Result<std::optional<std::pair<Bytes, AudioConfig>>> audio_sequence_header(Codec codec, const Bytes& record) {
  using Found = std::optional<std::pair<Bytes, AudioConfig>>;
  switch (codec) {
    case Codec::aac: {
      auto cfg = parse_audio_specific_config(record.view());
      if (!cfg) return std::unexpected(cfg.error());
      return Found(std::pair{record, std::move(*cfg)});
    }
    case Codec::opus: {
      // E-RTMP v2: an Opus SequenceStart carries the ID header or the comment header (RFC 7845 5.1,
      // 5.2); only the ID header configures the decoder.
      constexpr std::string_view kTags = "OpusTags";
      auto v = record.view();
      if (v.size() >= kTags.size() && std::equal(kTags.begin(), kTags.end(), v.begin(),
                                                 [](char c, std::byte b) { return static_cast<std::byte>(c) == b; }))
        return Found();
      auto cfg = parse_opus_head(v);
      if (!cfg) return std::unexpected(cfg.error());
      return Found(std::pair{record, std::move(*cfg)});
    }
    case Codec::flac: {
      auto info = parse_flac_streaminfo(record.view());
      if (!info) return std::unexpected(info.error());
      return Found(std::pair{record.share(info->offset, kFlacStreamInfoSize), std::move(info->config)});
    }
    default:
      return Found();  // MP3, AC-3 and E-AC-3 frames say their configuration; a header adds nothing
  }
}

bool same_record(const TrackConfig& track, Codec codec, const Bytes& record) {
  return track.codec == codec && std::ranges::equal(track.record.view(), record.view());
}

}  // namespace

Result<void> FlvDemuxer::video(std::int64_t timestamp_ms, const Bytes& body, Output& out) {
  auto packet = read_video(body.view(), detail_);
  if (!packet) return propagate(packet.error());
  switch (packet->kind) {
    case Packet::Kind::ignore:
      return {};
    case Packet::Kind::skip:
      ++skipped_;
      return {};
    case Packet::Kind::sequence_start: {
      Bytes record = body.share_from(packet->payload_offset);
      auto cfg = parse_video_record(packet->codec, record.view());
      if (!cfg) {
        detail_ = std::string("invalid ") + std::string(codec_name(packet->codec)) + " sequence header";
        return propagate(cfg.error());
      }
      if (same_record(video_, packet->codec, record)) return {};
      video_.track_id = kVideoTrackId;
      video_.type = MediaType::video;
      video_.codec = packet->codec;
      video_.timescale = kVideoTimescale;
      ++video_.version;
      video_.record = std::move(record);
      video_.video = std::move(*cfg);
      video_.audio.reset();
      out.on_track(video_);
      return {};
    }
    case Packet::Kind::coded_frame: {
      if (video_.codec != packet->codec || packet->payload_offset >= body.size()) {
        ++skipped_;
        return {};
      }
      constexpr std::int64_t kTicksPerMs = kVideoTimescale / 1000;
      MediaFrame frame;
      frame.track_id = video_.track_id;
      frame.type = MediaType::video;
      frame.codec = video_.codec;
      frame.dts = timestamp_ms * kTicksPerMs;
      frame.pts = (timestamp_ms + packet->composition_ms) * kTicksPerMs;
      frame.keyframe = packet->keyframe;
      frame.config_version = video_.version;
      frame.data = body.share_from(packet->payload_offset);
      out.on_frame(std::move(frame));
      return {};
    }
  }
  return fail(errc::malformed);  // not reached: every Packet::Kind returns above
}

Result<void> FlvDemuxer::audio(std::int64_t timestamp_ms, const Bytes& body, Output& out) {
  auto packet = read_audio(body.view(), detail_);
  if (!packet) return propagate(packet.error());
  switch (packet->kind) {
    case Packet::Kind::ignore:
      return {};
    case Packet::Kind::skip:
      ++skipped_;
      return {};
    case Packet::Kind::sequence_start: {
      auto found = audio_sequence_header(packet->codec, body.share_from(packet->payload_offset));
      if (!found) {
        detail_ = packet->codec == Codec::aac
                      ? std::string("invalid AudioSpecificConfig")
                      : "invalid " + std::string(codec_name(packet->codec)) + " sequence header";
        return propagate(found.error());
      }
      if (!*found) return {};
      auto& [record, cfg] = **found;
      if (same_record(audio_, packet->codec, record)) return {};
      audio_.track_id = kAudioTrackId;
      audio_.type = MediaType::audio;
      audio_.codec = packet->codec;
      audio_.timescale = cfg.sample_rate;
      ++audio_.version;
      audio_.record = std::move(record);
      audio_.audio = std::move(cfg);
      audio_.video.reset();
      out.on_track(audio_);
      return {};
    }
    case Packet::Kind::coded_frame: {
      if (announced_by_frames(packet->codec) && packet->payload_offset < body.size()) {
        // The track is announced by its first frame, and again when the rate or channels change.
        auto cfg = frame_audio_config(packet->codec, body.view().subspan(packet->payload_offset));
        if (!cfg) {
          ++skipped_;
          return {};
        }
        if (audio_.codec != packet->codec || !audio_.audio || audio_.audio->sample_rate != cfg->sample_rate ||
            audio_.audio->channels != cfg->channels) {
          audio_.track_id = kAudioTrackId;
          audio_.type = MediaType::audio;
          audio_.codec = packet->codec;
          audio_.timescale = cfg->sample_rate;
          ++audio_.version;
          audio_.record = Bytes();
          audio_.audio = std::move(*cfg);
          audio_.video.reset();
          out.on_track(audio_);
        }
      }
      if (audio_.codec != packet->codec || packet->payload_offset >= body.size()) {
        ++skipped_;
        return {};
      }
      MediaFrame frame;
      frame.track_id = audio_.track_id;
      frame.type = MediaType::audio;
      frame.codec = audio_.codec;
      frame.dts = timestamp_ms * std::int64_t{audio_.timescale} / 1000;
      frame.pts = frame.dts;
      frame.keyframe = true;
      frame.config_version = audio_.version;
      frame.data = body.share_from(packet->payload_offset);
      out.on_frame(std::move(frame));
      return {};
    }
  }
  return fail(errc::malformed);  // not reached: every Packet::Kind returns above
}

}  // namespace sf::media
