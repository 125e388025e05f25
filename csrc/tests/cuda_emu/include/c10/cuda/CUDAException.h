// Stand-in for c10's CUDA error checks in the host emulation of CUDA (csrc/tests/cuda_emu): a
// launch check throws the emulated launch's error, as the real one throws the CUDA error.
#pragma once
#include "../../../cuda_emu.h"

#define C10_CUDA_KERNEL_LAUNCH_CHECK() ::cuda_emu::check_last_launch(__FILE__, __LINE__)
