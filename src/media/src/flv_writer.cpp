#include <array>
#include <cstring>

#include "sf/media/flv.h"

namespace sf::media {
namespace {

constexpr std::uint8_t kTagAudio = 8;
constexpr std::uint8_t kTagVideo = 9;
constexpr std::size_t kTagHeaderSize = 11;
constexpr std::size_t kMaxTagPrefix = 16;
constexpr std::uint32_t kMaxDataSize = 0xffffff;  // DataSize is u24

// E-RTMP ex-header byte 0: isExHeader | FrameType ub3 | VideoPacketType ub4.
constexpr std::uint8_t kExHeader = 0x80;
constexpr std::uint8_t kFrameKey = 1;
constexpr std::uint8_t kFrameInter = 2;
constexpr std::uint8_t kSequenceStart = 0;
constexpr std::uint8_t kCodedFrames = 1;
constexpr std::uint8_t kCodedFramesX = 3;
// Audio byte 0: SoundFormat ub4 | rate ub2 | size ub1 | type ub1. Legacy MP3 says 44 kHz 16-bit
// stereo (the frames carry the real values); ExHeader (9) puts the AudioPacketType in the low bits.
constexpr std::uint8_t kLegacyMp3 = 0x2F;
constexpr std::uint8_t kAudioExHeader = 0x90;

// The E-RTMP v2 audio FourCC of a codec FLV carries only that way; nullptr for the others.
const char* audio_fourcc(Codec codec) {
  switch (codec) {
    case Codec::opus:
      return "Opus";
    case Codec::ac3:
      return "ac-3";
    case Codec::eac3:
      return "ec-3";
    case Codec::flac:
      return "fLaC";
    default:
      return nullptr;
  }
}

class Prefix {
 public:
  Prefix& u8(std::uint32_t v) {
    SF_ASSERT(size_ < bytes_.size());
    bytes_[size_++] = static_cast<std::byte>(v & 0xff);
    return *this;
  }
  Prefix& u24(std::uint32_t v) { return u8(v >> 16).u8(v >> 8).u8(v); }
  Prefix& fourcc(const char* s) {
    for (int i = 0; i < 4; ++i) u8(static_cast<std::uint8_t>(s[i]));
    return *this;
  }
  ByteView view() const { return {bytes_.data(), size_}; }

 private:
  std::array<std::byte, kMaxTagPrefix> bytes_{};
  std::size_t size_ = 0;
};

// Nearest ms, rounding halves up, so that ts * rate / 1000 (floored by the demuxer) maps back to ts.
std::int64_t to_ms(std::int64_t ticks, std::uint32_t timescale) {
  if (timescale == 0) return 0;
  const std::int64_t scaled = ticks * 1000 + timescale / 2;
  const std::int64_t q = scaled / timescale;
  return (scaled % timescale != 0 && scaled < 0) ? q - 1 : q;
}

}  // namespace

void FlvWriter::write_header(bool has_video, bool has_audio) {
  const std::uint8_t flags = (has_audio ? 0x04 : 0x00) | (has_video ? 0x01 : 0x00);
  const std::array<std::byte, 13> header{
      std::byte{'F'}, std::byte{'L'}, std::byte{'V'}, std::byte{1}, std::byte{flags},
      std::byte{0},   std::byte{0},   std::byte{0},   std::byte{9},  // DataOffset
      std::byte{0},   std::byte{0},   std::byte{0},   std::byte{0},  // PreviousTagSize0
  };
  sink_(header);
}

void FlvWriter::write_track(const TrackConfig& track, std::int64_t timestamp_ms) {
  Prefix p;
  if (track.type == MediaType::audio) {
    const char* four_cc = audio_fourcc(track.codec);
    if (track.codec != Codec::aac && track.codec != Codec::mp3 && !four_cc) return;
    audio_timescale_ = track.timescale;
    // MP3, AC-3 and E-AC-3 have no sequence header: their frames announce the track.
    if (track.record.size() == 0 && track.codec != Codec::aac) return;
    if (track.codec == Codec::aac) {
      p.u8(0xAF).u8(0);  // SPECS 4: AAC, AACPacketType 0 = AudioSpecificConfig
    } else if (four_cc) {
      p.u8(kAudioExHeader | kSequenceStart).fourcc(four_cc);  // Opus ID header, FLAC STREAMINFO
    } else {
      return;
    }
    write_tag(kTagAudio, timestamp_ms, p.view(), track.record);
    return;
  }
  video_timescale_ = track.timescale;
  if (track.codec == Codec::h264) {
    p.u8(0x17).u8(0).u24(0);  // key frame | AVC, AVCPacketType 0, composition 0
  } else if (track.codec == Codec::hevc) {
    p.u8(kExHeader | kFrameKey << 4 | kSequenceStart).fourcc("hvc1");
  } else if (track.codec == Codec::av1) {
    p.u8(kExHeader | kFrameKey << 4 | kSequenceStart).fourcc("av01");
  } else {
    return;
  }
  write_tag(kTagVideo, timestamp_ms, p.view(), track.record);
}

void FlvWriter::write_frame(const MediaFrame& frame) {
  Prefix p;
  if (frame.type == MediaType::audio) {
    if (frame.codec == Codec::aac) {
      p.u8(0xAF).u8(1);  // AACPacketType 1 = raw frame
    } else if (frame.codec == Codec::mp3) {
      p.u8(kLegacyMp3);  // whole MPEG audio frames, readable by any FLV reader
    } else if (const char* four_cc = audio_fourcc(frame.codec)) {
      p.u8(kAudioExHeader | kCodedFrames).fourcc(four_cc);
    } else {
      return;
    }
    write_tag(kTagAudio, to_ms(frame.dts, audio_timescale_), p.view(), frame.data);
    return;
  }
  const std::int64_t dts_ms = to_ms(frame.dts, video_timescale_);
  const auto composition = static_cast<std::uint32_t>(to_ms(frame.pts, video_timescale_) - dts_ms);
  const std::uint8_t frame_type = frame.keyframe ? kFrameKey : kFrameInter;
  if (frame.codec == Codec::h264) {
    p.u8(frame_type << 4 | 7).u8(1).u24(composition);  // AVCPacketType 1 = NALUs
  } else if (frame.codec == Codec::hevc) {
    // CodedFramesX when the offset is zero saves the si24 (E-RTMP v1).
    if (composition == 0) {
      p.u8(kExHeader | frame_type << 4 | kCodedFramesX).fourcc("hvc1");
    } else {
      p.u8(kExHeader | frame_type << 4 | kCodedFrames).fourcc("hvc1").u24(composition);
    }
  } else if (frame.codec == Codec::av1) {
    p.u8(kExHeader | frame_type << 4 | kCodedFrames).fourcc("av01");  // no composition field
  } else {
    return;
  }
  write_tag(kTagVideo, dts_ms, p.view(), frame.data);
}

void FlvWriter::write_tag(std::uint8_t type, std::int64_t timestamp_ms, ByteView prefix, ByteView payload) {
  SF_ASSERT(prefix.size() <= kMaxTagPrefix);
  const std::size_t data_size = prefix.size() + payload.size();
  // A tag cannot describe more than 16 MiB; such a frame is dropped rather than written corrupt.
  if (data_size > kMaxDataSize) return;
  // FLV timestamps are 32-bit ms: lower 24 bits, then bits 31-24.
  const auto ts = static_cast<std::uint32_t>(timestamp_ms < 0 ? 0 : timestamp_ms);
  Prefix head;
  head.u8(type).u24(static_cast<std::uint32_t>(data_size)).u24(ts & 0xffffff).u8(ts >> 24).u24(0);
  std::array<std::byte, kTagHeaderSize + kMaxTagPrefix> first{};
  std::memcpy(first.data(), head.view().data(), kTagHeaderSize);
  std::memcpy(first.data() + kTagHeaderSize, prefix.data(), prefix.size());
  sink_(ByteView(first.data(), kTagHeaderSize + prefix.size()));
  if (!payload.empty()) sink_(payload);
  const auto previous = static_cast<std::uint32_t>(kTagHeaderSize + data_size);
  const std::array<std::byte, 4> trailer{static_cast<std::byte>(previous >> 24), static_cast<std::byte>(previous >> 16),
                                         static_cast<std::byte>(previous >> 8), static_cast<std::byte>(previous)};
  sink_(trailer);
}

}  // namespace sf::media
