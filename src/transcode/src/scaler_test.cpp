#include "scaler.h"

#include "encoder.h"

#include <gtest/gtest.h>

extern "C" {
#include <libavutil/pixdesc.h>
}

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

namespace sf::transcode {
namespace {

// A 4:2:0 picture with gradients, fine sinusoidal detail, sharp edges and a little noise, so the
// two libraries' filters are compared on more than flat areas.
FramePtr synthetic(int w, int h, AVPixelFormat fmt = AV_PIX_FMT_YUV420P, int align = kScalerAlign) {
  auto f = make_frame();
  f->width = w;
  f->height = h;
  f->format = fmt;
  if (av_frame_get_buffer(f.get(), align) < 0) return nullptr;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> noise(-3, 3);
  auto value = [&](int x, int y, int plane) {
    double v = 40 + 150.0 * x / w + 20 * std::sin(x * 0.05 + plane) * std::cos(y * 0.07);
    if ((x / 97 + y / 61) % 2) v += 30;  // hard edges
    v += noise(rng);
    if (plane > 0) v = 128 + (v - 128) / 3;
    return static_cast<std::uint8_t>(std::clamp(v, 16.0, 235.0));
  };
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(fmt);
  for (int p = 0; p < 3; ++p) {
    int pw = p ? AV_CEIL_RSHIFT(w, d->log2_chroma_w) : w;
    int ph = p ? AV_CEIL_RSHIFT(h, d->log2_chroma_h) : h;
    for (int y = 0; y < ph; ++y)
      for (int x = 0; x < pw; ++x) f->data[p][std::ptrdiff_t(y) * f->linesize[p] + x] = value(x, y, p);
  }
  return f;
}

struct PlaneStats {
  double psnr[3];
  double mean_a[3];
};

PlaneStats compare(const AVFrame& a, const AVFrame& b) {
  PlaneStats s{};
  for (int p = 0; p < 3; ++p) {
    int pw = p ? (a.width + 1) / 2 : a.width, ph = p ? (a.height + 1) / 2 : a.height;
    double se = 0, sum = 0;
    for (int y = 0; y < ph; ++y)
      for (int x = 0; x < pw; ++x) {
        int va = a.data[p][std::ptrdiff_t(y) * a.linesize[p] + x];
        int vb = b.data[p][std::ptrdiff_t(y) * b.linesize[p] + x];
        se += double(va - vb) * (va - vb);
        sum += va;
      }
    double mse = se / (double(pw) * ph);
    s.psnr[p] = mse == 0 ? 100 : 10 * std::log10(255.0 * 255.0 / mse);
    s.mean_a[p] = sum / (double(pw) * ph);
  }
  return s;
}

double plane_mean(const AVFrame& f, int p) {
  int pw = p ? (f.width + 1) / 2 : f.width, ph = p ? (f.height + 1) / 2 : f.height;
  double sum = 0;
  for (int y = 0; y < ph; ++y)
    for (int x = 0; x < pw; ++x) sum += f.data[p][std::ptrdiff_t(y) * f.linesize[p] + x];
  return sum / (double(pw) * ph);
}

TEST(Scaler, ParsesNames) {
  EXPECT_EQ(parse_scaler("zimg"), ScalerKind::zimg);
  EXPECT_EQ(parse_scaler("swscale"), ScalerKind::swscale);
  EXPECT_FALSE(parse_scaler("bilinear"));
  EXPECT_STREQ(scaler_name(ScalerKind::zimg), "zimg");
}

// zimg and swscale, each straight from the 1080p picture, agree to >= 50 dB on every plane, at
// the bench's rungs and at rungs whose chroma widths are odd.
TEST(Scaler, ZimgMatchesSwscaleDirect) {
  auto src = synthetic(1920, 1080);
  ASSERT_TRUE(src);
  ASSERT_TRUE(zimg_takes(*src));
  auto zimg = make_scaler(ScalerKind::zimg);
  auto sws = make_scaler(ScalerKind::swscale);
  for (auto [w, h] : {std::pair{1280, 720}, {854, 480}, {640, 360}, {426, 240}, {284, 160}}) {
    auto a = alloc_picture(w, h), b = alloc_picture(w, h);
    ASSERT_TRUE(a && b);
    std::memset(a->data[0], 0, std::size_t(a->linesize[0]) * h);
    EXPECT_EQ(zimg->scale(*src, *a), ScalerKind::zimg) << w << "x" << h;
    EXPECT_EQ(sws->scale(*src, *b), ScalerKind::swscale) << w << "x" << h;
    EXPECT_EQ(a->width, w);
    EXPECT_EQ(a->height, h);
    auto s = compare(*a, *b);
    std::printf("zimg vs swscale direct, 1920x1080 -> %dx%d: Y %.2f U %.2f V %.2f dB\n", w, h, s.psnr[0], s.psnr[1],
                s.psnr[2]);
    for (int p = 0; p < 3; ++p) {
      EXPECT_GE(s.psnr[p], 50.0) << w << "x" << h << " plane " << p;
      // A picture of the source, not an untouched buffer: same mean brightness as the source.
      EXPECT_NEAR(s.mean_a[p], plane_mean(*src, p), 1.5) << w << "x" << h << " plane " << p;
    }
  }
}

TEST(Scaler, RebuildsWhenTheSourceChanges) {
  auto zimg = make_scaler(ScalerKind::zimg);
  auto sws = make_scaler(ScalerKind::swscale);
  for (auto [sw, sh] : {std::pair{1920, 1080}, {1280, 720}, {1920, 1080}}) {
    auto src = synthetic(sw, sh);
    auto a = alloc_picture(640, 360), b = alloc_picture(640, 360);
    EXPECT_EQ(zimg->scale(*src, *a), ScalerKind::zimg);
    EXPECT_EQ(sws->scale(*src, *b), ScalerKind::swscale);
    auto s = compare(*a, *b);
    for (int p = 0; p < 3; ++p) EXPECT_GE(s.psnr[p], 50.0) << sw << "x" << sh << " plane " << p;
  }
}

// Formats zimg is not used for go to swscale, with swscale's own result.
TEST(Scaler, OtherFormatsFallBackToSwscale) {
  for (auto fmt : {AV_PIX_FMT_YUVJ420P, AV_PIX_FMT_YUV422P, AV_PIX_FMT_YUV420P10LE}) {
    auto src = synthetic(1280, 720, fmt);
    ASSERT_TRUE(src);
    EXPECT_FALSE(zimg_takes(*src));
    auto zimg = make_scaler(ScalerKind::zimg);
    auto sws = make_scaler(ScalerKind::swscale);
    auto a = alloc_picture(640, 360), b = alloc_picture(640, 360);
    EXPECT_EQ(zimg->scale(*src, *a), ScalerKind::swscale) << av_get_pix_fmt_name(fmt);
    EXPECT_EQ(sws->scale(*src, *b), ScalerKind::swscale);
    EXPECT_EQ(compare(*a, *b).psnr[0], 100) << av_get_pix_fmt_name(fmt);  // identical
  }
}

// A picture whose planes are not aligned as zimg needs, and a size zimg's 4:2:0 cannot take.
TEST(Scaler, MisalignedOrOddPicturesFallBackToSwscale) {
  auto src = synthetic(1280, 720);
  auto shifted = make_frame();
  av_frame_ref(shifted.get(), src.get());
  shifted->data[0] += 1;  // a crop of one column
  shifted->width -= 2;
  EXPECT_FALSE(zimg_takes(*shifted));
  auto zimg = make_scaler(ScalerKind::zimg);
  auto out = alloc_picture(640, 360);
  EXPECT_EQ(zimg->scale(*shifted, *out), ScalerKind::swscale);
  auto odd = alloc_picture(641, 361);
  EXPECT_FALSE(zimg_takes(*odd));
  EXPECT_EQ(zimg->scale(*src, *odd), ScalerKind::swscale);
  // And back to zimg for a picture it takes.
  EXPECT_EQ(zimg->scale(*src, *out), ScalerKind::zimg);
}

// libavcodec's H.264 decoder (as the pipeline opens it) hands zimg pictures it takes: a 1080p
// picture (coded 1088 lines, cropped) encoded by our encoder and decoded again.
TEST(Scaler, DecodedPicturesGoToZimg) {
  EncoderParams p;
  p.width = 1920;
  p.height = 1080;
  p.fps = 30;
  p.rung.bitrate = 2000000;
  p.rung.maxrate = 2200000;
  p.rung.bufsize = 2200000;
  p.rung.preset = "ultrafast";
  std::string error;
  auto enc = make_video_encoder(p, &error);
  ASSERT_TRUE(enc) << error;
  auto src = synthetic(1920, 1080);
  std::vector<EncodedFrame> out;
  ASSERT_TRUE(enc->encode(src.get(), 0, true, out));
  (void)enc->encode(nullptr, 0, false, out);
  ASSERT_FALSE(out.empty());
  auto rec = enc->track().record.view();
  CodecContextPtr dec(avcodec_alloc_context3(avcodec_find_decoder(AV_CODEC_ID_H264)));
  ASSERT_TRUE(dec);
  dec->extradata = static_cast<std::uint8_t*>(av_mallocz(rec.size() + AV_INPUT_BUFFER_PADDING_SIZE));
  std::memcpy(dec->extradata, rec.data(), rec.size());
  dec->extradata_size = static_cast<int>(rec.size());
  dec->thread_count = 1;
  ASSERT_EQ(avcodec_open2(dec.get(), dec->codec, nullptr), 0);
  PacketPtr pkt(av_packet_alloc());
  auto data = out[0].data.view();
  ASSERT_EQ(av_new_packet(pkt.get(), static_cast<int>(data.size())), 0);
  std::memcpy(pkt->data, data.data(), data.size());
  ASSERT_EQ(avcodec_send_packet(dec.get(), pkt.get()), 0);
  avcodec_send_packet(dec.get(), nullptr);
  auto pic = make_frame();
  ASSERT_EQ(avcodec_receive_frame(dec.get(), pic.get()), 0);
  EXPECT_EQ(pic->width, 1920);
  EXPECT_EQ(pic->height, 1080);
  std::printf("decoded 1080p: linesizes %d %d %d, planes at %zu %zu %zu mod 64\n", pic->linesize[0], pic->linesize[1],
              pic->linesize[2], std::size_t(reinterpret_cast<std::uintptr_t>(pic->data[0]) % 64),
              std::size_t(reinterpret_cast<std::uintptr_t>(pic->data[1]) % 64),
              std::size_t(reinterpret_cast<std::uintptr_t>(pic->data[2]) % 64));
  EXPECT_TRUE(zimg_takes(*pic)) << pic->linesize[0] << " " << pic->linesize[1] << " "
                                << reinterpret_cast<std::uintptr_t>(pic->data[0]) % 64;
  auto zimg = make_scaler(ScalerKind::zimg);
  auto sws = make_scaler(ScalerKind::swscale);
  auto a = alloc_picture(854, 480), b = alloc_picture(854, 480);
  EXPECT_EQ(zimg->scale(*pic, *a), ScalerKind::zimg);
  EXPECT_EQ(sws->scale(*pic, *b), ScalerKind::swscale);
  auto s = compare(*a, *b);
  for (int p = 0; p < 3; ++p) EXPECT_GE(s.psnr[p], 50.0) << "plane " << p;
}

// A source aligned to 32 bytes but not 64 takes zimg's 256-bit code (ZIMG_CPU_AUTO), a 64-byte
// aligned one its 512-bit code where the CPU has it: the same pictures either way.
TEST(Scaler, ThirtyTwoByteAlignedSourcesStayOnZimg) {
  auto src = synthetic(1984, 1080);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(src->data[0]) % 64, 0u);
  auto crop = make_frame();
  av_frame_ref(crop.get(), src.get());
  crop->data[0] += 64;  // luma columns 64..1983, chroma 32..991: 32-byte aligned, not 64
  crop->data[1] += 32;
  crop->data[2] += 32;
  crop->width = 1920;
  ASSERT_NE(reinterpret_cast<std::uintptr_t>(crop->data[1]) % 64, 0u);
  EXPECT_TRUE(zimg_takes(*crop));
  auto zimg = make_scaler(ScalerKind::zimg);
  auto sws = make_scaler(ScalerKind::swscale);
  auto a = alloc_picture(854, 480), b = alloc_picture(854, 480), c = alloc_picture(854, 480);
  EXPECT_EQ(zimg->scale(*crop, *a), ScalerKind::zimg);
  EXPECT_EQ(sws->scale(*crop, *b), ScalerKind::swscale);
  auto s = compare(*a, *b);
  for (int p = 0; p < 3; ++p) EXPECT_GE(s.psnr[p], 50.0) << "plane " << p;
  // The same picture 64-byte aligned (copied), through the same scaler: its graph is rebuilt.
  auto copy = alloc_picture(1920, 1080);
  ASSERT_EQ(av_frame_copy(copy.get(), crop.get()), 0);
  EXPECT_EQ(zimg->scale(*copy, *c), ScalerKind::zimg);
  EXPECT_GE(compare(*a, *c).psnr[0], 60.0);
}

TEST(Scaler, RungPicturesAreAlignedForZimg) {
  for (auto [w, h] : {std::pair{854, 480}, {426, 240}, {284, 160}, {1278, 718}}) {
    auto f = alloc_picture(w, h);
    ASSERT_TRUE(f);
    EXPECT_TRUE(zimg_takes(*f)) << w << "x" << h;
  }
}

}  // namespace
}  // namespace sf::transcode
