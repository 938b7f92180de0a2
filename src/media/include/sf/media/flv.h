// FLV tag bodies (what RTMP audio/video messages carry), legacy and Enhanced RTMP, to tracks and
// frames; and FLV files written from tracks and frames (recording, relays).
// One FlvDemuxer per publisher, used from one thread. Frames share the message buffer: the
// demuxer slices `body`, it never copies media bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sf/core/bytes.h"
#include "sf/core/result.h"
#include "sf/media/frame.h"

namespace sf::media {

class FlvDemuxer {
 public:
  struct Output {
    virtual ~Output() = default;
    // A new or changed codec configuration (sequence header); frames after it carry its version.
    virtual void on_track(const TrackConfig& track) = 0;
    virtual void on_frame(MediaFrame&& frame) = 0;
  };

  // `timestamp_ms` is the message's (already unwrapped) timestamp, the decode time in ms.
  // Errors: errc::malformed or errc::truncated for a body that does not parse (close the peer);
  // errc::unsupported for a codec we do not take (detail() names it, e.g. "video codec id 2
  // (Sorenson H.263)" or "video FourCC vp08"). Frames that arrive before their sequence header,
  // and info/command frames, produce no output and no error (they count in skipped_frames()).
  Result<void> video(std::int64_t timestamp_ms, const Bytes& body, Output& out);
  Result<void> audio(std::int64_t timestamp_ms, const Bytes& body, Output& out);

  const std::string& detail() const { return detail_; }
  std::uint64_t skipped_frames() const { return skipped_; }
  const TrackConfig* video_track() const { return video_.codec == Codec::unknown ? nullptr : &video_; }
  const TrackConfig* audio_track() const { return audio_.codec == Codec::unknown ? nullptr : &audio_; }

 private:
  TrackConfig video_;
  TrackConfig audio_;
  std::string detail_;
  std::uint64_t skipped_ = 0;
};

// Writes an FLV file: header, then sequence headers and frames as tags (legacy tags for H.264, AAC
// and MP3, Enhanced RTMP ex-headers for HEVC, AV1, Opus, AC-3, E-AC-3 and FLAC). Bytes go to `sink` as a header piece
// and the frame's own payload, so the payload is never concatenated. Timestamps are written in ms.
class FlvWriter {
 public:
  using Sink = std::function<void(ByteView)>;
  explicit FlvWriter(Sink sink) : sink_(std::move(sink)) {}

  void write_header(bool has_video, bool has_audio);
  void write_track(const TrackConfig& track, std::int64_t timestamp_ms);
  void write_frame(const MediaFrame& frame);

 private:
  void write_tag(std::uint8_t type, std::int64_t timestamp_ms, ByteView prefix, ByteView payload);
  Sink sink_;
  std::uint32_t audio_timescale_ = 1000;
  std::uint32_t video_timescale_ = kVideoTimescale;
};

}  // namespace sf::media
