// Stand-in for the CUDA runtime header in the host emulation of CUDA (csrc/tests/cuda_emu): the
// kernel files include it for dim3 and cudaStream_t, which the emulator defines.
#pragma once
#include "../cuda_emu.h"
