/*
 * The smallest program the launcher can build and run: no runtime, no channel.
 * Useful to check a toolchain and a compartment backend on their own.
 */
#include <stdio.h>

int main(void)
{
    printf("hello from a compartment\n");
    printf("this program does not use the attestables runtime\n");
    printf("goodbye\n");
    return 0;
}
