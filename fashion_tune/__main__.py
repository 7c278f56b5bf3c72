from fashion_tune.cli import main

main()
