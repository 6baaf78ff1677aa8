//! Herald's entry point: no command opens the window, a command runs headless. Sets up logging
//! (to stderr, filtered by `HERALD_LOG`) and turns outcomes into exit codes.

use clap::Parser;

/// mimalloc instead of the system allocator: an import hands a million rows' strings from the
/// thread that reads the file to the thread that writes them, and with glibc's allocator about
/// a quarter of the import went to freeing them across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = herald::cli::Cli::parse();
    init_logging();
    if let (None, Some(path)) = (&cli.command, &cli.campaign) {
        // A word that is neither a command nor a campaign file is a typo, not a file to open.
        let looks_like_campaign =
            path.exists() || path.extension().is_some_and(|ext| ext == "toml");
        if !looks_like_campaign {
            eprintln!(
                "herald: unrecognized command or missing campaign file '{}' (see herald --help)",
                path.display()
            );
            std::process::exit(herald::cli::exit::USAGE);
        }
    }
    let code = if cli.command.is_some() {
        herald::cli::run(cli)
    } else {
        match herald::ui::run(cli.campaign, cli.db) {
            Ok(()) => herald::cli::exit::DONE,
            Err(error) => {
                eprintln!("herald: {error:#}");
                herald::cli::exit::ERROR
            }
        }
    };
    std::process::exit(code);
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
