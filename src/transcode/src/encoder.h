// Video encoders behind one interface, so a hardware encoder (h264_nvenc, h264_vaapi, h264_qsv)
// can take libx264's place by configuration. One per rung; used by one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "av.h"
#include "sf/media/frame.h"
#include "sf/transcode/ladder.h"

namespace sf::transcode {

struct EncoderParams {
  std::string encoder = "libx264";  // a libavcodec encoder name
  std::uint32_t width = 0, height = 0;
  double fps = 30;  // nominal (rate control follows the timestamps)
  Rung rung;        // bit rates, preset, profile, level
};

struct EncodedFrame {
  Bytes data;  // length-prefixed NAL units
  std::int64_t pts = 0, dts = 0;
  bool keyframe = false;
};

class VideoEncoder {
 public:
  virtual ~VideoEncoder() = default;
  // The avcC record and what it says (codec string, size).
  virtual const media::TrackConfig& track() const = 0;
  // A YUV 4:2:0 picture of the configured size (shared: not modified), `pts` in 1/90000; nullptr
  // drains. `keyframe` forces an IDR. Encoded frames are appended to `out`.
  virtual Result<void> encode(const AVFrame* picture, std::int64_t pts, bool keyframe,
                              std::vector<EncodedFrame>& out) = 0;
};

// Fails (with a reason in *error) if the encoder is unknown or does not open.
std::unique_ptr<VideoEncoder> make_video_encoder(const EncoderParams& params, std::string* error);
// True if libavcodec has an encoder of that name.
bool have_encoder(const std::string& name);

}  // namespace sf::transcode
