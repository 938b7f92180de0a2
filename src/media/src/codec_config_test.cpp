#include "sf/media/codec_config.h"

#include <gtest/gtest.h>

#include <random>

#include "bit_reader.h"
#include "test_util.h"

namespace sf::media {
namespace {

using testing::BitWriter;
using testing::hex;
using testing::hex_vector;

// Records produced by ffmpeg 5.1: libx264 (testsrc2 1280x720 High, 1920x1080 Main), libx265 3.5
// (1920x1080 and 1280x718 Main; the SEI array dropped), libsvtav1 1.4 (640x360).
constexpr std::string_view kAvccX264High720p =
    "0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800";
constexpr std::string_view kAvccX264Main1080p =
    "014d4028ffe1001a674d4028eca03c0113f2e022000003000200000300781e30632c01000568ebe3cb20";
constexpr std::string_view kHvccX265Main1080p =
    "01016000000090000000000078f000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003007895"
    "9809a10001002a420101016000000300900000030000030078a003c08010e596566924caf01680800000030080000"
    "00f04a2000100074401c172b46240";
constexpr std::string_view kHvccX265Main718p =
    "0101600000009000000000005df000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003005d95"
    "9809a10001002c42010101600000030090000003000003005da00280802d1f596566924caf016808000003000800000300"
    "f040a2000100074401c172b46240";
constexpr std::string_view kAv1cSvtAv1_640x360 = "81010c000a0b0000000cc4ff6700be0010";

struct AvcSps {
  std::uint8_t profile_idc = 66;
  std::uint8_t level_idc = 30;
  std::uint32_t sps_id = 0;
  std::uint32_t chroma_format_idc = 1;
  bool separate_colour_plane = false;
  bool scaling_lists = false;
  std::uint32_t poc_type = 0;
  std::uint32_t width_mbs = 20;
  std::uint32_t height_map_units = 15;
  bool frame_mbs_only = true;
  std::uint32_t crop[4] = {0, 0, 0, 0};  // left, right, top, bottom
};

bool has_chroma_info(std::uint8_t profile) {
  return profile == 100 || profile == 110 || profile == 122 || profile == 244 || profile == 44;
}

std::vector<std::byte> avc_sps_nal(const AvcSps& s) {
  BitWriter w;
  w.bits(s.profile_idc, 8).bits(0, 8).bits(s.level_idc, 8).ue(s.sps_id);
  if (has_chroma_info(s.profile_idc)) {
    w.ue(s.chroma_format_idc);
    if (s.chroma_format_idc == 3) w.bits(s.separate_colour_plane, 1);
    w.ue(0).ue(0).bits(0, 1).bits(s.scaling_lists, 1);
    if (s.scaling_lists) {
      const int lists = s.chroma_format_idc == 3 ? 12 : 8;
      for (int i = 0; i < lists; ++i) {
        const bool present = i % 2 == 0;
        w.bits(present, 1);
        if (!present) continue;
        if (i == 2) {
          w.se(-8);  // nextScale 0 ends the list after one delta
        } else {
          const int size = i < 6 ? 16 : 64;
          for (int j = 0; j < size; ++j) w.se(j % 2 == 0 ? 5 : -4);  // never reaches 0
        }
      }
    }
  }
  w.ue(0).ue(s.poc_type);
  if (s.poc_type == 0) w.ue(2);
  if (s.poc_type == 1) w.bits(0, 1).se(-2).se(3).ue(3).se(1).se(-1).se(7);
  w.ue(4).bits(0, 1).ue(s.width_mbs - 1).ue(s.height_map_units - 1).bits(s.frame_mbs_only, 1);
  if (!s.frame_mbs_only) w.bits(1, 1);
  w.bits(1, 1);
  const bool cropping = s.crop[0] || s.crop[1] || s.crop[2] || s.crop[3];
  w.bits(cropping, 1);
  if (cropping) w.ue(s.crop[0]).ue(s.crop[1]).ue(s.crop[2]).ue(s.crop[3]);
  w.bits(0, 1);  // vui_parameters_present_flag
  auto nal = testing::escape(w.finish());
  nal.insert(nal.begin(), std::byte{0x67});
  return nal;
}

Bytes avcc_with(const std::vector<std::byte>& sps) {
  std::vector<std::byte> v = hex_vector("01");
  v.push_back(sps[1]);
  v.push_back(sps[2]);
  v.push_back(sps[3]);
  for (auto b : hex_vector("ffe1")) v.push_back(b);
  v.push_back(static_cast<std::byte>(sps.size() >> 8));
  v.push_back(static_cast<std::byte>(sps.size()));
  v.insert(v.end(), sps.begin(), sps.end());
  for (auto b : hex_vector("01 0002 68ce")) v.push_back(b);
  return Bytes::copy_of(v);
}

TEST(ParseAvcc, X264High720pGivesSizeProfileAndCodecString) {
  auto cfg = parse_avcc(hex(kAvccX264High720p));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->codec, Codec::h264);
  EXPECT_EQ(cfg->profile, 100);
  EXPECT_EQ(cfg->constraints, 0);
  EXPECT_EQ(cfg->level, 31);
  EXPECT_EQ(cfg->width, 1280u);
  EXPECT_EQ(cfg->height, 720u);
  EXPECT_EQ(cfg->nalu_length_size, 4);
  EXPECT_EQ(cfg->codec_string, "avc1.64001f");
}

TEST(ParseAvcc, X264Main1080pCropsCodedHeight1088To1080) {
  auto cfg = parse_avcc(hex(kAvccX264Main1080p));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->width, 1920u);
  EXPECT_EQ(cfg->height, 1080u);
  EXPECT_EQ(cfg->codec_string, "avc1.4d4028");
}

TEST(ParseAvcc, RemovesEmulationPreventionBytesBeforeReadingSps) {
  // level_idc 0 then sps_id 63 (ue prefix 000000) puts 00 00 02 in the RBSP, escaped to 00 00 03 02.
  AvcSps s{.level_idc = 0, .sps_id = 63, .width_mbs = 80, .height_map_units = 45};
  auto nal = avc_sps_nal(s);
  ASSERT_EQ(nal[3], std::byte{0x00});
  ASSERT_EQ(nal[4], std::byte{0x03});
  auto cfg = parse_avcc(avcc_with(nal));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->width, 1280u);
  EXPECT_EQ(cfg->height, 720u);
}

TEST(ParseAvcc, SkipsScalingListsAndUsesSeparateColourPlaneCropUnitsForFields) {
  AvcSps s{.profile_idc = 244,
           .chroma_format_idc = 3,
           .separate_colour_plane = true,
           .scaling_lists = true,
           .poc_type = 1,
           .width_mbs = 40,
           .height_map_units = 12,
           .frame_mbs_only = false,
           .crop = {2, 2, 1, 1}};
  auto cfg = parse_avcc(avcc_with(avc_sps_nal(s)));
  ASSERT_TRUE(cfg) << cfg.error().message();
  // ChromaArrayType 0: CropUnitX 1, CropUnitY 2 for field coding; frame height 12*2*16.
  EXPECT_EQ(cfg->width, 636u);
  EXPECT_EQ(cfg->height, 380u);
}

TEST(ParseAvcc, Uses422CropUnits) {
  AvcSps s{.profile_idc = 122,
           .chroma_format_idc = 2,
           .scaling_lists = true,
           .width_mbs = 120,
           .height_map_units = 68,
           .crop = {1, 0, 0, 4}};
  auto cfg = parse_avcc(avcc_with(avc_sps_nal(s)));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->width, 1918u);   // SubWidthC 2
  EXPECT_EQ(cfg->height, 1084u);  // SubHeightC 1
}

TEST(ParseAvcc, AcceptsTwoByteNaluLengths) {
  auto v = hex_vector(kAvccX264High720p);
  v[4] = std::byte{0xfd};
  auto cfg = parse_avcc(Bytes::copy_of(v));
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->nalu_length_size, 2);
}

TEST(ParseAvcc, RejectsThreeByteNaluLengths) {
  auto v = hex_vector(kAvccX264High720p);
  v[4] = std::byte{0xfe};
  EXPECT_EQ(parse_avcc(Bytes::copy_of(v)).error(), errc::malformed);
}

TEST(ParseAvcc, RejectsUnknownConfigurationVersion) {
  auto v = hex_vector(kAvccX264High720p);
  v[0] = std::byte{0x02};
  EXPECT_EQ(parse_avcc(Bytes::copy_of(v)).error(), errc::malformed);
}

TEST(ParseAvcc, RejectsChromaFormatAboveThree) {
  AvcSps s{.profile_idc = 100, .chroma_format_idc = 4};
  EXPECT_EQ(parse_avcc(avcc_with(avc_sps_nal(s))).error(), errc::malformed);
}

TEST(ParseAvcc, RejectsCropLargerThanPicture) {
  AvcSps s{.width_mbs = 1, .height_map_units = 1, .crop = {4, 4, 0, 0}};
  EXPECT_EQ(parse_avcc(avcc_with(avc_sps_nal(s))).error(), errc::malformed);
}

TEST(ParseAvcc, EveryTruncationOfTheArraysFails) {
  const auto full = hex_vector(kAvccX264Main1080p);
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto r = parse_avcc(ByteView(full.data(), n));
    EXPECT_FALSE(r) << "prefix " << n;
  }
}

TEST(ParseAvcc, TruncatedSpsIsReportedAsTruncated) {
  // numSPS 1, length 3: only profile, constraints and level fit.
  EXPECT_EQ(parse_avcc(hex("01640028ffe1 0004 6764001f 00")).error(), errc::truncated);
}

TEST(ParseHvcc, X265Main1080pGivesSizeAndCodecString) {
  auto cfg = parse_hvcc(hex(kHvccX265Main1080p));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->codec, Codec::hevc);
  EXPECT_EQ(cfg->profile, 1);
  EXPECT_EQ(cfg->level, 120);
  EXPECT_EQ(cfg->width, 1920u);
  EXPECT_EQ(cfg->height, 1080u);
  EXPECT_EQ(cfg->nalu_length_size, 4);
  EXPECT_EQ(cfg->codec_string, "hvc1.1.6.L120.90");
}

TEST(ParseHvcc, X265AppliesConformanceWindow) {
  auto cfg = parse_hvcc(hex(kHvccX265Main718p));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->width, 1280u);
  EXPECT_EQ(cfg->height, 718u);
  EXPECT_EQ(cfg->codec_string, "hvc1.1.6.L93.90");
}

std::vector<std::byte> hevc_sps_nal(std::uint32_t max_sub_layers_minus1, std::uint32_t chroma_format_idc,
                                    std::uint32_t width, std::uint32_t height, std::uint32_t crop_right,
                                    std::uint32_t crop_bottom) {
  BitWriter w;
  w.bits(0, 4).bits(max_sub_layers_minus1, 3).bits(1, 1);
  w.bits(0, 2).bits(0, 1).bits(2, 5).bits(0x20000000, 32).bits(0b1001, 4).bits(0, 44).bits(123, 8);
  for (std::uint32_t i = 0; i < max_sub_layers_minus1; ++i) w.bits(i == 0, 1).bits(1, 1);
  if (max_sub_layers_minus1 > 0) w.bits(0, 2 * (8 - max_sub_layers_minus1));
  for (std::uint32_t i = 0; i < max_sub_layers_minus1; ++i) {
    if (i == 0) w.bits(0xffffffffffull, 44).bits(0xfffffffffffull, 44);
    w.bits(0xff, 8);
  }
  w.ue(0).ue(chroma_format_idc);
  if (chroma_format_idc == 3) w.bits(0, 1);
  w.ue(width).ue(height);
  const bool window = crop_right || crop_bottom;
  w.bits(window, 1);
  if (window) w.ue(0).ue(crop_right).ue(0).ue(crop_bottom);
  w.ue(0).ue(0).ue(4);  // bit depths, log2_max_pic_order_cnt_lsb_minus4
  auto nal = testing::escape(w.finish());
  nal.insert(nal.begin(), {std::byte{0x42}, std::byte{0x01}});
  return nal;
}

Bytes hvcc_with(std::string_view fixed22, const std::vector<std::byte>& sps) {
  auto v = hex_vector(fixed22);
  for (auto b : hex_vector("01 a1 0001")) v.push_back(b);
  v.push_back(static_cast<std::byte>(sps.size() >> 8));
  v.push_back(static_cast<std::byte>(sps.size()));
  v.insert(v.end(), sps.begin(), sps.end());
  return Bytes::copy_of(v);
}

constexpr std::string_view kHvccFixedMain10 = "01 02 20000000 900000000000 7b f000 fc fd f8 f8 0000 0f";

TEST(ParseHvcc, SkipsSubLayerProfileTierLevel) {
  auto cfg = parse_hvcc(hvcc_with(kHvccFixedMain10, hevc_sps_nal(2, 1, 3840, 2160, 0, 0)));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->width, 3840u);
  EXPECT_EQ(cfg->height, 2160u);
  EXPECT_EQ(cfg->codec_string, "hvc1.2.4.L123.90");
}

TEST(ParseHvcc, Uses422ConformanceWindowUnits) {
  auto cfg = parse_hvcc(hvcc_with(kHvccFixedMain10, hevc_sps_nal(0, 2, 1920, 1088, 1, 4)));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->width, 1918u);
  EXPECT_EQ(cfg->height, 1084u);
}

TEST(ParseHvcc, CodecStringHasProfileSpaceHighTierAndDropsOnlyTrailingZeroConstraintBytes) {
  // profile_space 2 ('B'), tier H, profile 4, compatibility bit 4 only, constraints B0 23 00 04 00 00.
  auto cfg = parse_hvcc(hex("01 a4 08000000 b02300040000 99 f000 fc fe f8 f8 0000 0f 00"));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->codec_string, "hvc1.B4.10.H153.B0.23.0.4");
  EXPECT_EQ(cfg->width, 0u);  // no SPS array
}

TEST(ParseHvcc, EveryTruncationFails) {
  const auto full = hex_vector(kHvccX265Main1080p);
  for (std::size_t n = 0; n < full.size(); ++n) {
    EXPECT_FALSE(parse_hvcc(ByteView(full.data(), n))) << "prefix " << n;
  }
}

TEST(ParseHvcc, RejectsSpsArrayHoldingAnotherNalType) {
  auto sps = hevc_sps_nal(0, 1, 640, 360, 0, 0);
  sps[0] = std::byte{0x44};  // PPS header in the SPS array
  EXPECT_EQ(parse_hvcc(hvcc_with(kHvccFixedMain10, sps)).error(), errc::malformed);
}

TEST(ParseAv1c, SvtAv1RecordGivesCodecStringAndSequenceHeaderSize) {
  auto cfg = parse_av1c(hex(kAv1cSvtAv1_640x360));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->codec, Codec::av1);
  EXPECT_EQ(cfg->profile, 0);
  EXPECT_EQ(cfg->level, 1);
  EXPECT_EQ(cfg->width, 640u);
  EXPECT_EQ(cfg->height, 360u);
  EXPECT_EQ(cfg->codec_string, "av01.0.01M.08");
}

TEST(ParseAv1c, HighTierTenBitWithoutConfigObusHasUnknownSize) {
  auto cfg = parse_av1c(hex("81 2d c0 00"));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->codec_string, "av01.1.13H.10");
  EXPECT_EQ(cfg->width, 0u);
}

TEST(ParseAv1c, TwelveBitNeedsProfileTwo) {
  EXPECT_EQ(parse_av1c(hex("81 48 60 00"))->codec_string, "av01.2.08M.12");
}

TEST(ParseAv1c, RejectsWrongMarkerAndShortRecord) {
  EXPECT_EQ(parse_av1c(hex("01 01 0c 00")).error(), errc::malformed);
  EXPECT_EQ(parse_av1c(hex("81 01 0c")).error(), errc::truncated);
}

TEST(ParseAv1c, TruncatedSequenceHeaderLeavesSizeUnknown) {
  auto cfg = parse_av1c(hex("81010c000a0b0000000cc4ff67"));
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->width, 0u);
}

TEST(ParseAudioSpecificConfig, LcStereo44100) {
  auto cfg = parse_audio_specific_config(hex("1210"));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->codec, Codec::aac);
  EXPECT_EQ(cfg->object_type, 2);
  EXPECT_EQ(cfg->sample_rate, 44100u);
  EXPECT_EQ(cfg->channels, 2);
  EXPECT_EQ(cfg->samples_per_frame, 1024);
  EXPECT_EQ(cfg->codec_string, "mp4a.40.2");
}

TEST(ParseAudioSpecificConfig, LcStereo48000) {
  auto cfg = parse_audio_specific_config(hex("1190"));
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->sample_rate, 48000u);
  EXPECT_EQ(cfg->channels, 2);
}

TEST(ParseAudioSpecificConfig, FrameLengthFlagSelects960Samples) {
  auto cfg = parse_audio_specific_config(hex("1194"));
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->samples_per_frame, 960);
}

TEST(ParseAudioSpecificConfig, ExplicitFrequencyAfterIndex15) {
  // aot 2, index 15, 24-bit 22000 Hz, channel config 1.
  BitWriter w;
  w.bits(2, 5).bits(15, 4).bits(22000, 24).bits(1, 4).bits(0, 3);
  auto cfg = parse_audio_specific_config(Bytes::copy_of(w.finish()));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->sample_rate, 22000u);
  EXPECT_EQ(cfg->channels, 1);
}

TEST(ParseAudioSpecificConfig, EscapedObjectType) {
  // aot 31 escape + 6 bits (10) = 42 (USAC), 48 kHz stereo.
  BitWriter w;
  w.bits(31, 5).bits(10, 6).bits(3, 4).bits(2, 4);
  auto cfg = parse_audio_specific_config(Bytes::copy_of(w.finish()));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->object_type, 42);
  EXPECT_EQ(cfg->codec_string, "mp4a.40.42");
}

TEST(ParseAudioSpecificConfig, ExplicitSbrKeepsCoreRateAndReportsHeAac) {
  // aot 5, 24 kHz core, stereo, extension 48 kHz, core aot 2, GASpecificConfig.
  BitWriter w;
  w.bits(5, 5).bits(6, 4).bits(2, 4).bits(3, 4).bits(2, 5).bits(0, 3);
  auto cfg = parse_audio_specific_config(Bytes::copy_of(w.finish()));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->object_type, 5);
  EXPECT_EQ(cfg->sample_rate, 24000u);
  EXPECT_EQ(cfg->codec_string, "mp4a.40.5");
}

TEST(ParseAudioSpecificConfig, RejectsReservedFrequencyIndexAndObjectTypeZero) {
  EXPECT_EQ(parse_audio_specific_config(hex("1690")).error(), errc::malformed);  // index 13
  EXPECT_EQ(parse_audio_specific_config(hex("0210")).error(), errc::malformed);  // aot 0
}

TEST(ParseAudioSpecificConfig, TruncatedInputs) {
  EXPECT_EQ(parse_audio_specific_config({}).error(), errc::truncated);
  EXPECT_EQ(parse_audio_specific_config(hex("12")).error(), errc::truncated);
  EXPECT_EQ(parse_audio_specific_config(hex("f8")).error(), errc::truncated);  // escape cut off
}

// Headers as ffmpeg 5.1 wrote them: libopus (stereo), the native ac3 encoder (stereo 48 kHz
// 192k; mono 44.1 kHz 96k), eac3 (5.1, 48 kHz) and flac (stereo 44.1 kHz, the file's marker and
// first metadata block header).
constexpr std::string_view kOpusHeadStereo = "4f70757348656164 01 02 3801 80bb0000 0000 00";
constexpr std::string_view kAc3Stereo48k = "0b77fe95144043e1";
constexpr std::string_view kAc3Mono44k = "0b771ef84c402f84";
constexpr std::string_view kEac3Surround48k = "0b7701ff3f87c000";
constexpr std::string_view kFlacHeader =
    "664c6143 00000022 12001200 000305 000514 0ac442f00000ac44 b48e1dd0c193fdd40c05f288d60157a3";

TEST(ParseOpusHead, StereoIsFortyEightKilohertz) {
  auto cfg = parse_opus_head(hex(kOpusHeadStereo));
  ASSERT_TRUE(cfg) << cfg.error().message();
  EXPECT_EQ(cfg->codec, Codec::opus);
  EXPECT_EQ(cfg->sample_rate, 48000u);
  EXPECT_EQ(cfg->channels, 2);
  EXPECT_EQ(cfg->codec_string, "Opus");
}

TEST(ParseOpusHead, RejectsWrongMagicVersionAndShortMappings) {
  EXPECT_EQ(parse_opus_head(hex("4f70757354616773 01 02 3801 80bb0000 0000 00")).error(), errc::malformed);
  EXPECT_EQ(parse_opus_head(hex("4f70757348656164 10 02 3801 80bb0000 0000 00")).error(), errc::malformed);
  EXPECT_EQ(parse_opus_head(hex("4f70757348656164 01 00 3801 80bb0000 0000 00")).error(), errc::malformed);
  // Family 0 is mono or stereo only; family 1 needs stream counts and a mapping per channel.
  EXPECT_EQ(parse_opus_head(hex("4f70757348656164 01 06 3801 80bb0000 0000 00")).error(), errc::malformed);
  EXPECT_EQ(parse_opus_head(hex("4f70757348656164 01 06 3801 80bb0000 0000 01 0402 000104")).error(), errc::truncated);
  auto six = parse_opus_head(hex("4f70757348656164 01 06 3801 80bb0000 0000 01 0402 000401020503"));
  ASSERT_TRUE(six);
  EXPECT_EQ(six->channels, 6);
  EXPECT_EQ(parse_opus_head(hex("4f70757348656164 01 02 3801")).error(), errc::truncated);
}

TEST(ParseFlacStreamInfo, FindsTheBlockBehindMarkerAndHeaderOrBare) {
  const Bytes full = hex(kFlacHeader);
  auto info = parse_flac_streaminfo(full);
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->offset, 8u);
  EXPECT_EQ(info->config.codec, Codec::flac);
  EXPECT_EQ(info->config.sample_rate, 44100u);
  EXPECT_EQ(info->config.channels, 2);
  EXPECT_EQ(info->config.samples_per_frame, 4608);
  EXPECT_EQ(info->config.codec_string, "fLaC");
  auto headed = parse_flac_streaminfo(full.view().subspan(4));
  ASSERT_TRUE(headed);
  EXPECT_EQ(headed->offset, 4u);
  auto bare = parse_flac_streaminfo(full.view().subspan(8));
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->offset, 0u);
  EXPECT_EQ(bare->config.sample_rate, 44100u);
}

TEST(ParseFlacStreamInfo, RejectsShortBlocksZeroRateAndAMarkerWithoutStreamInfo) {
  const Bytes full = hex(kFlacHeader);
  EXPECT_EQ(parse_flac_streaminfo(full.view().subspan(8, 33)).error(), errc::truncated);
  EXPECT_EQ(parse_flac_streaminfo(full.view().first(41)).error(), errc::malformed);
  auto zero_rate = hex_vector(kFlacHeader);
  zero_rate[18] = zero_rate[19] = std::byte{0};
  zero_rate[20] = std::byte{0x02};
  EXPECT_EQ(parse_flac_streaminfo(zero_rate).error(), errc::malformed);
  auto vorbis_first = hex_vector(kFlacHeader);
  vorbis_first[4] = std::byte{4};  // a VORBIS_COMMENT block where STREAMINFO must be
  EXPECT_EQ(parse_flac_streaminfo(vorbis_first).error(), errc::malformed);
}

TEST(ParseAc3FrameHeader, Ac3RateChannelsAndFrameLength) {
  auto stereo = parse_ac3_frame_header(hex(kAc3Stereo48k));
  ASSERT_TRUE(stereo) << stereo.error().message();
  EXPECT_EQ(stereo->codec, Codec::ac3);
  EXPECT_EQ(stereo->sample_rate, 48000u);
  EXPECT_EQ(stereo->channels, 2);
  EXPECT_EQ(stereo->samples_per_frame, 1536);
  EXPECT_EQ(stereo->codec_string, "ac-3");
  auto mono = parse_ac3_frame_header(hex(kAc3Mono44k));
  ASSERT_TRUE(mono);
  EXPECT_EQ(mono->sample_rate, 44100u);
  EXPECT_EQ(mono->channels, 1);
  // 3/2 with LFE (acmod 7 carries cmixlev and surmixlev before lfeon).
  BitWriter w;
  w.bits(0x0b77, 16).bits(0, 16).bits(0, 2).bits(30, 6).bits(8, 5).bits(0, 3).bits(7, 3).bits(0, 4).bits(1, 1);
  auto surround = parse_ac3_frame_header(Bytes::copy_of(w.finish()));
  ASSERT_TRUE(surround);
  EXPECT_EQ(surround->channels, 6);
}

TEST(ParseAc3FrameHeader, Eac3BlocksAndHalfRates) {
  auto surround = parse_ac3_frame_header(hex(kEac3Surround48k));
  ASSERT_TRUE(surround) << surround.error().message();
  EXPECT_EQ(surround->codec, Codec::eac3);
  EXPECT_EQ(surround->sample_rate, 48000u);
  EXPECT_EQ(surround->channels, 6);
  EXPECT_EQ(surround->samples_per_frame, 1536);
  EXPECT_EQ(surround->codec_string, "ec-3");
  // fscod 3: fscod2 1 (22.05 kHz), always six blocks; acmod 2, no LFE.
  BitWriter w;
  w.bits(0x0b77, 16)
      .bits(0, 2)
      .bits(0, 3)
      .bits(100, 11)
      .bits(3, 2)
      .bits(1, 2)
      .bits(2, 3)
      .bits(0, 1)
      .bits(16, 5)
      .bits(0, 11);
  auto half = parse_ac3_frame_header(Bytes::copy_of(w.finish()));
  ASSERT_TRUE(half);
  EXPECT_EQ(half->sample_rate, 22050u);
  EXPECT_EQ(half->samples_per_frame, 1536);
  EXPECT_EQ(half->channels, 2);
  // One block per frame at 48 kHz.
  BitWriter one;
  one.bits(0x0b77, 16)
      .bits(0, 2)
      .bits(0, 3)
      .bits(100, 11)
      .bits(0, 2)
      .bits(0, 2)
      .bits(1, 3)
      .bits(0, 1)
      .bits(16, 5)
      .bits(0, 11);
  auto short_frames = parse_ac3_frame_header(Bytes::copy_of(one.finish()));
  ASSERT_TRUE(short_frames);
  EXPECT_EQ(short_frames->samples_per_frame, 256);
  EXPECT_EQ(short_frames->channels, 1);
}

TEST(ParseAc3FrameHeader, RejectsNoSyncReservedRatesAndUnknownStreamIds) {
  EXPECT_EQ(parse_ac3_frame_header(hex("0b78fe95144043e1")).error(), errc::malformed);
  EXPECT_EQ(parse_ac3_frame_header(hex("0b77fe95d44043e1")).error(), errc::malformed);    // fscod 3
  EXPECT_EQ(parse_ac3_frame_header(hex("0b77fe953f4043e1")).error(), errc::malformed);    // frmsizecod 63
  EXPECT_EQ(parse_ac3_frame_header(hex("0b77fe9514c843e1")).error(), errc::unsupported);  // bsid 25
  EXPECT_EQ(parse_ac3_frame_header(hex("0b77fe951440")).error(), errc::truncated);
}

TEST(CodecConfigParsers, GarbageNeverCrashesAndUsuallyFails) {
  std::mt19937 rng(1234);
  std::vector<std::byte> buf;
  for (int i = 0; i < 20000; ++i) {
    buf.resize(rng() % 64);
    for (auto& b : buf) b = static_cast<std::byte>(rng());
    if (!buf.empty() && i % 2 == 0) buf[0] = std::byte{1};
    (void)parse_avcc(buf);
    (void)parse_hvcc(buf);
    (void)parse_av1c(buf);
    (void)parse_audio_specific_config(buf);
    (void)parse_opus_head(buf);
    (void)parse_flac_streaminfo(buf);
    (void)parse_ac3_frame_header(buf);
  }
}

TEST(NalToRbsp, DropsOnlyTheEmulationPreventionByte) {
  const auto in = hex_vector("00 00 03 01 00 00 03 00 03 00 00 00");
  EXPECT_EQ(nal_to_rbsp(in), hex_vector("00 00 01 00 00 00 03 00 00 00"));
}

TEST(BitReader, ExpGolombReadsAndReportsTruncation) {
  const auto in = hex_vector("a6 42");  // 1 010 011 00100 0010
  BitReader br(in);
  EXPECT_EQ(br.ue(), 0u);
  EXPECT_EQ(br.ue(), 1u);
  EXPECT_EQ(br.se(), -1);
  EXPECT_EQ(br.ue(), 3u);
  EXPECT_FALSE(br.error());
  br.ue();
  EXPECT_EQ(br.error(), errc::truncated);
}

TEST(BitReader, ThirtyTwoLeadingZerosIsMalformed) {
  const auto in = hex_vector("00 00 00 00 80 00 00 00 00");
  BitReader br(in);
  br.ue();
  EXPECT_EQ(br.error(), errc::malformed);
}

}  // namespace
}  // namespace sf::media
