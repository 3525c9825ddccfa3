// The Winograd matrices of F(2x2, 3x3) (alpha = 4, points 0, 1, -1, infinity) and F(2x2, 5x5)
// (alpha = 6, points 0, 1, -1, 2, -2, infinity): A^T (output), G (weights), B^T (input), rows padded
// to the largest size. B^T was solved for so that the identity is exact (Lavin & Gray 2016). Shared
// by every ISA's Winograd kernel;
#ifndef CKERNELS_WINOGRAD_MATRICES_H
#define CKERNELS_WINOGRAD_MATRICES_H
static const float AT3[2][6] = {{1, 1, 1, 0}, {0, 1, -1, 1}};
static const float G3[6][5] = {{-1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
static const float BT3[6][6] = {{-1, 0, 1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, -1, 0, 1}};
static const float AT5[2][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}};
static const float G5[6][5] = {
    {0.25f, 0, 0, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6, 1.0f / 3, 2.0f / 3},
    {1.0f / 24, -1.0f / 12, 1.0f / 6, -1.0f / 3, 2.0f / 3},
    {0, 0, 0, 0, 1}};
static const float BT5[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
#endif
