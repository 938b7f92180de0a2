// Resizing a decoded picture to one rung's yuv420p size. Two libraries behind one interface:
// - zimg (the default, transcode.scaler=zimg): bicubic B=0 C=0.6 (swscale's default bicubic),
//   chroma sited at the centre on both sides, same matrix, transfer, primaries and range on both
//   sides, so it only resizes. It takes 8-bit yuv420p pictures whose planes and strides are aligned
//   to kScalerAlign; anything else (yuvj420p, 4:2:2, 10-bit, misaligned planes, sizes zimg rejects)
//   goes to swscale, picture by picture.
// - swscale (transcode.scaler=swscale): SWS_BICUBIC, any format libswscale reads.
// bench/README.md's transcode section has both libraries' cost and their PSNR against each other.
// One scaler per rung, on the decode strand; its state is rebuilt when the source's size or format
// or the destination's size changes.
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "av.h"

namespace sf::transcode {

enum class ScalerKind { zimg, swscale };

std::optional<ScalerKind> parse_scaler(std::string_view name);  // "zimg" or "swscale"
const char* scaler_name(ScalerKind kind);

// zimg's alignment for plane addresses and strides: 32 bytes on x86 (ZIMG_CPU_AUTO), 64 for its
// 512-bit code (ZIMG_CPU_AUTO_64B), used when both pictures are aligned to 64. Rung pictures are
// allocated at 64.
inline constexpr int kScalerAlign = 64;
inline constexpr int kZimgInputAlign = 32;

// A yuv420p picture of width x height with buffers at kScalerAlign, or null.
FramePtr alloc_picture(int width, int height);

class Scaler {
 public:
  virtual ~Scaler() = default;
  // Scales `src` into `dst`, a yuv420p picture with its size set and its buffers allocated
  // (alloc_picture). Returns which library scaled it, or nothing when neither could.
  virtual std::optional<ScalerKind> scale(const AVFrame& src, AVFrame& dst) = 0;
};

std::unique_ptr<Scaler> make_scaler(ScalerKind kind);

// Whether zimg scales `f` (as a source or a destination): 8-bit yuv420p, even size, planes and
// positive strides aligned to kZimgInputAlign.
bool zimg_takes(const AVFrame& f);

}  // namespace sf::transcode
