from tgan_deploy.serve.cli import main

main()
