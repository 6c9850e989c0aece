/* Per-core arithmetic peaks of an x86-64 CPU with AVX2 and FMA, from instruction streams with no memory
   traffic: what no matrix-product kernel can exceed (ceiling_bench.py measures what the libraries reach).
     - the clock, from chains of dependent integer adds (one cycle each);
     - float32: 12 independent 256-bit FMAs per iteration (16 FLOP each);
     - int8, u8 x s8 summed into int32 the usual AVX2 way (vpmaddubsw, vpmaddwd with ones, vpaddd), as
       int8 GEMM kernels without VNNI do: 64 integer ops per 32 multiply-adds;
     - int8 with int16 sums (vpmaddubsw, vpaddsw): faster, but it saturates unless inputs are range-reduced.
   Build and run: gcc -O2 benchmarks/cpu_peak.c -o /tmp/cpu_peak && /tmp/cpu_peak
   (two copies at once, one per core, show whether the per-core rates hold with both cores busy). */
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define N 400000000L
int main(void){
  long x=0; double t=now();
  for(long i=0;i<N;i++) __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0":"+r"(x));
  double ghz=4.0*N/(now()-t)/1e9; printf("clock (dependent adds): %.3f GHz\n",ghz);
  long M=N/8;
  __asm__ volatile("vpxor %%ymm0,%%ymm0,%%ymm0\n\tvpxor %%ymm1,%%ymm1,%%ymm1\n\tvpxor %%ymm2,%%ymm2,%%ymm2":::"xmm0","xmm1","xmm2");
  t=now();
  for(long i=0;i<M;i++) __asm__ volatile(
    "vfmadd231ps %%ymm1,%%ymm2,%%ymm3\n\tvfmadd231ps %%ymm1,%%ymm2,%%ymm4\n\tvfmadd231ps %%ymm1,%%ymm2,%%ymm5\n\t"
    "vfmadd231ps %%ymm1,%%ymm2,%%ymm6\n\tvfmadd231ps %%ymm1,%%ymm2,%%ymm7\n\tvfmadd231ps %%ymm1,%%ymm2,%%ymm8\n\t"
    "vfmadd231ps %%ymm1,%%ymm2,%%ymm9\n\tvfmadd231ps %%ymm1,%%ymm2,%%ymm10\n\tvfmadd231ps %%ymm1,%%ymm2,%%ymm11\n\t"
    "vfmadd231ps %%ymm1,%%ymm2,%%ymm12\n\tvfmadd231ps %%ymm1,%%ymm2,%%ymm13\n\tvfmadd231ps %%ymm1,%%ymm2,%%ymm14\n\t"
    :::"xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14");
  double s=now()-t, g=M*12*16.0/s/1e9;
  printf("float32 FMA: %.1f GFLOP/s per core = %.1f FLOP/cycle\n", g, g/ghz);
  t=now();  /* u8 x s8 -> s32, the usual AVX2 sequence: vpmaddubsw, vpmaddwd with ones, vpaddd; 4 chains */
  for(long i=0;i<M;i++) __asm__ volatile(
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm3\n\tvpmaddwd %%ymm0,%%ymm3,%%ymm3\n\tvpaddd %%ymm3,%%ymm4,%%ymm4\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm5\n\tvpmaddwd %%ymm0,%%ymm5,%%ymm5\n\tvpaddd %%ymm5,%%ymm6,%%ymm6\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm7\n\tvpmaddwd %%ymm0,%%ymm7,%%ymm7\n\tvpaddd %%ymm7,%%ymm8,%%ymm8\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm9\n\tvpmaddwd %%ymm0,%%ymm9,%%ymm9\n\tvpaddd %%ymm9,%%ymm10,%%ymm10\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm11\n\tvpmaddwd %%ymm0,%%ymm11,%%ymm11\n\tvpaddd %%ymm11,%%ymm12,%%ymm12\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm13\n\tvpmaddwd %%ymm0,%%ymm13,%%ymm13\n\tvpaddd %%ymm13,%%ymm14,%%ymm14\n\t"
    :::"xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14");
  s=now()-t; g=M*6*64.0/s/1e9;
  printf("int8 (vpmaddubsw+vpmaddwd+vpaddd): %.1f GOP/s per core = %.1f OP/cycle\n", g, g/ghz);
  t=now();  /* int16 accumulation: vpmaddubsw + vpaddsw (saturates unless inputs are range-reduced) */
  for(long i=0;i<M;i++) __asm__ volatile(
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm3\n\tvpaddsw %%ymm3,%%ymm4,%%ymm4\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm5\n\tvpaddsw %%ymm5,%%ymm6,%%ymm6\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm7\n\tvpaddsw %%ymm7,%%ymm8,%%ymm8\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm9\n\tvpaddsw %%ymm9,%%ymm10,%%ymm10\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm11\n\tvpaddsw %%ymm11,%%ymm12,%%ymm12\n\t"
    "vpmaddubsw %%ymm1,%%ymm2,%%ymm13\n\tvpaddsw %%ymm13,%%ymm14,%%ymm14\n\t"
    :::"xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14");
  s=now()-t; g=M*6*64.0/s/1e9;
  printf("int8 (vpmaddubsw+vpaddsw, int16 sums): %.1f GOP/s per core = %.1f OP/cycle\n", g, g/ghz);
  return 0;
}
