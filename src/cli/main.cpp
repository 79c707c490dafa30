#include <cstdio>
int main() { std::puts("octet: skeleton"); return 0; }
