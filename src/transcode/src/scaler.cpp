#include "scaler.h"

extern "C" {
#include <libavutil/pixdesc.h>
}
#include <zimg.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sf/core/log.h"

namespace sf::transcode {

std::optional<ScalerKind> parse_scaler(std::string_view name) {
  if (name == "zimg") return ScalerKind::zimg;
  if (name == "swscale") return ScalerKind::swscale;
  return std::nullopt;
}

const char* scaler_name(ScalerKind kind) {
  return kind == ScalerKind::zimg ? "zimg" : "swscale";
}

FramePtr alloc_picture(int width, int height) {
  auto f = make_frame();
  f->width = width;
  f->height = height;
  f->format = AV_PIX_FMT_YUV420P;
  if (av_frame_get_buffer(f.get(), kScalerAlign) < 0) return nullptr;
  return f;
}

bool planes_aligned(const AVFrame& f, int align) {
  for (int p = 0; p < 3; ++p) {
    if (!f.data[p] || f.linesize[p] <= 0 || f.linesize[p] % align ||
        reinterpret_cast<std::uintptr_t>(f.data[p]) % align)
      return false;
  }
  return true;
}

bool zimg_takes(const AVFrame& f) {
  if (f.format != AV_PIX_FMT_YUV420P || f.width <= 0 || f.height <= 0 || f.width % 2 || f.height % 2) return false;
  return planes_aligned(f, kZimgInputAlign);
}

namespace {

class SwsScaler final : public Scaler {
 public:
  std::optional<ScalerKind> scale(const AVFrame& src, AVFrame& dst) override {
    if (!sws_ || src_w_ != src.width || src_h_ != src.height || src_fmt_ != src.format || dst_w_ != dst.width ||
        dst_h_ != dst.height) {
      sws_.reset(sws_getContext(src.width, src.height, static_cast<AVPixelFormat>(src.format), dst.width, dst.height,
                                AV_PIX_FMT_YUV420P, SWS_BICUBIC, nullptr, nullptr, nullptr));
      src_w_ = src.width;
      src_h_ = src.height;
      src_fmt_ = src.format;
      dst_w_ = dst.width;
      dst_h_ = dst.height;
    }
    if (!sws_) return std::nullopt;
    sws_scale(sws_.get(), src.data, src.linesize, 0, src.height, dst.data, dst.linesize);
    return ScalerKind::swscale;
  }

 private:
  SwsPtr sws_;
  int src_w_ = 0, src_h_ = 0, src_fmt_ = -1, dst_w_ = 0, dst_h_ = 0;
};

struct GraphFree {
  void operator()(zimg_filter_graph* g) const { zimg_filter_graph_free(g); }
};
struct Free {
  void operator()(void* p) const { std::free(p); }
};

zimg_image_format yuv420p_format(int width, int height) {
  zimg_image_format f;
  zimg_image_format_default(&f, ZIMG_API_VERSION);
  f.width = unsigned(width);
  f.height = unsigned(height);
  f.pixel_type = ZIMG_PIXEL_BYTE;
  f.subsample_w = 1;
  f.subsample_h = 1;
  f.color_family = ZIMG_COLOR_YUV;
  // The same on both sides: nothing but resizing happens.
  f.matrix_coefficients = ZIMG_MATRIX_BT709;
  f.transfer_characteristics = ZIMG_TRANSFER_BT709;
  f.color_primaries = ZIMG_PRIMARIES_BT709;
  f.depth = 8;
  f.pixel_range = ZIMG_RANGE_LIMITED;
  f.field_parity = ZIMG_FIELD_PROGRESSIVE;
  f.chroma_location = ZIMG_CHROMA_CENTER;
  return f;
}

std::string zimg_error() {
  char msg[256] = {};
  zimg_get_last_error(msg, sizeof msg);
  return msg;
}

class ZimgScaler final : public Scaler {
 public:
  std::optional<ScalerKind> scale(const AVFrame& src, AVFrame& dst) override {
    if (!zimg_takes(src) || !zimg_takes(dst)) {
      if (!told_) {
        told_ = true;  // once per rung: the source format rarely changes
        const char* format = av_get_pix_fmt_name(static_cast<AVPixelFormat>(src.format));
        log::info("transcode", "zimg does not take this picture: swscale scales it",
                  {{"format", format ? format : "?"},
                   {"from", fmt::format("{}x{}", src.width, src.height)},
                   {"to", fmt::format("{}x{}", dst.width, dst.height)}});
      }
      return fallback_.scale(src, dst);
    }
    if (!graph(src, dst)) return fallback_.scale(src, dst);
    zimg_image_buffer_const in;
    std::memset(&in, 0, sizeof in);
    in.version = ZIMG_API_VERSION;
    zimg_image_buffer out;
    std::memset(&out, 0, sizeof out);
    out.version = ZIMG_API_VERSION;
    for (int p = 0; p < 3; ++p) {
      in.plane[p].data = src.data[p];
      in.plane[p].stride = src.linesize[p];
      in.plane[p].mask = ZIMG_BUFFER_MAX;
      out.plane[p].data = dst.data[p];
      out.plane[p].stride = dst.linesize[p];
      out.plane[p].mask = ZIMG_BUFFER_MAX;
    }
    if (zimg_filter_graph_process(graph_.get(), &in, &out, tmp_.get(), nullptr, nullptr, nullptr, nullptr) !=
        ZIMG_ERROR_SUCCESS) {
      log::warn("transcode", "zimg failed, swscale takes over", {{"error", zimg_error()}});
      failed_ = true;
      return fallback_.scale(src, dst);
    }
    return ScalerKind::zimg;
  }

 private:
  // The graph for this source and destination, built (with its scratch buffer) when either changed.
  bool graph(const AVFrame& src, const AVFrame& dst) {
    // zimg's 512-bit code where CPU and pictures allow it: both sides aligned to 64 bytes (rung
    // pictures always are; libavcodec's decoded ones were here). About 0.6x the CPU of its
    // 256-bit code for the bench's three rungs (bench/README.md).
    bool wide = planes_aligned(src, kScalerAlign) && planes_aligned(dst, kScalerAlign);
    if (src_w_ == src.width && src_h_ == src.height && dst_w_ == dst.width && dst_h_ == dst.height && wide_ == wide)
      return graph_ && !failed_;
    wide_ = wide;
    src_w_ = src.width;
    src_h_ = src.height;
    dst_w_ = dst.width;
    dst_h_ = dst.height;
    failed_ = false;
    graph_.reset();
    tmp_.reset();
    auto in = yuv420p_format(src.width, src.height);
    auto out = yuv420p_format(dst.width, dst.height);
    zimg_graph_builder_params params;
    zimg_graph_builder_params_default(&params, ZIMG_API_VERSION);
    params.resample_filter = ZIMG_RESIZE_BICUBIC;  // luma and, by default, chroma
    params.filter_param_a = 0;                     // B
    params.filter_param_b = 0.6;                   // C: swscale's SWS_BICUBIC
    params.resample_filter_uv = ZIMG_RESIZE_BICUBIC;
    params.filter_param_a_uv = 0;
    params.filter_param_b_uv = 0.6;
    params.cpu_type = wide ? ZIMG_CPU_AUTO_64B : ZIMG_CPU_AUTO;
    graph_.reset(zimg_filter_graph_build(&in, &out, &params));
    std::size_t tmp = 0;
    if (graph_ && zimg_filter_graph_get_tmp_size(graph_.get(), &tmp) == ZIMG_ERROR_SUCCESS)
      tmp_.reset(std::aligned_alloc(kScalerAlign, (tmp + kScalerAlign) / kScalerAlign * kScalerAlign));
    if (!graph_ || !tmp_) {
      log::warn("transcode", "zimg cannot scale this picture, swscale takes it",
                {{"from", fmt::format("{}x{}", src.width, src.height)},
                 {"to", fmt::format("{}x{}", dst.width, dst.height)},
                 {"error", zimg_error()}});
      graph_.reset();
      return false;
    }
    return true;
  }

  std::unique_ptr<zimg_filter_graph, GraphFree> graph_;
  std::unique_ptr<void, Free> tmp_;  // aligned as zimg needs; allocated once per graph
  int src_w_ = 0, src_h_ = 0, dst_w_ = 0, dst_h_ = 0;
  bool wide_ = false;
  bool failed_ = false;
  bool told_ = false;
  SwsScaler fallback_;
};

}  // namespace

std::unique_ptr<Scaler> make_scaler(ScalerKind kind) {
  if (kind == ScalerKind::zimg) return std::make_unique<ZimgScaler>();
  return std::make_unique<SwsScaler>();
}

}  // namespace sf::transcode
