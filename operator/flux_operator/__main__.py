from flux_operator.main import main

main()
