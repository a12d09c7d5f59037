module kprof.example/sample-app

go 1.19
