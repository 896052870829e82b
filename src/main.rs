// mimalloc: reviews are allocation-heavy (a parsed AdmissionReview is hundreds
// of small strings and maps); it parses them about a quarter faster than the
// system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    defender::cli::main()
}
